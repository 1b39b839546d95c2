package plugins

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A module over the size cap is refused from its size: it is never read
// (the registry allocates far less than its size), its Added event is
// invalid with a *FileError matching ErrTooLarge and without bytes or
// version, Info and Read say the same, and a module that shrinks under
// the cap is read as usual.
func TestRegistry_ModuleOverSizeCapIsRefusedUnread(t *testing.T) {
	const capBytes, big = 1 << 20, 64 << 20
	dir := t.TempDir()
	path := filepath.Join(dir, "big.wasm")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(big); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, rec := start(t, dir, WithMaxModuleSize(capBytes))
	evs := rec.waitN(t, 1)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > big/2 {
		t.Errorf("the registry allocated %d bytes for a %d-byte module over the cap", n, big)
	}
	ev := evs[0]
	var fe *FileError
	if ev.Kind != Added || !ev.Invalid || ev.Bytes != nil || ev.Version != "" ||
		!errors.As(ev.Err, &fe) || !errors.Is(ev.Err, ErrTooLarge) {
		t.Fatalf("event = %v %s invalid=%v version=%q bytes=%d err=%v, want an invalid Added with ErrTooLarge",
			ev.Kind, ev.Name, ev.Invalid, ev.Version, len(ev.Bytes), ev.Err)
	}
	if !strings.Contains(ev.Err.Error(), "64MiB, over the cap of 1MiB") {
		t.Errorf("reason %q does not give the size and the cap", ev.Err)
	}
	if info, ok := r.Get("big"); !ok || !errors.Is(info.ModuleErr, ErrTooLarge) {
		t.Errorf("Get = %+v, %v, want ModuleErr ErrTooLarge", info, ok)
	}
	if _, _, _, err := r.Read("big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read = %v, want ErrTooLarge", err)
	}
	rec.quiet(t, 1, 100*time.Millisecond)

	if err := os.Truncate(path, 8); err != nil {
		t.Fatal(err)
	}
	evs = rec.waitN(t, 2)
	if ev := evs[1]; ev.Kind != Changed || ev.Invalid || len(ev.Bytes) != 8 || ev.Version == "" {
		t.Errorf("after the shrink: %v invalid=%v bytes=%d, want a valid Changed with the bytes", ev.Kind, ev.Invalid, len(ev.Bytes))
	}
}

// Sidecars and modules that are symbolic links leading outside the plugin
// directory are refused without being read: nothing of the file they point
// at reaches an event, Info, Read or the log. A link that stays inside the
// directory is followed.
func TestRegistry_SymlinkOutsideIsRefused(t *testing.T) {
	const secret = "SECRET-CONTENT-of-another-file"
	outside := t.TempDir()
	for name, content := range map[string]string{
		"passwd":      secret + ":x:0:0:root:/root:/bin/bash\n",
		"module.wasm": "\x00asm" + secret,
	} {
		if err := os.WriteFile(filepath.Join(outside, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.wasm"), []byte("\x00asm-p"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"p.yaml":      filepath.Join(outside, "passwd"),
		"q.wasm":      filepath.Join(outside, "module.wasm"),
		"r.wasm":      "p.wasm",
		"s.wasm":      "../" + filepath.Base(outside) + "/module.wasm",
		"inside.yaml": "p.yaml",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, rec := start(t, dir, WithLogger(log))
	evs := rec.waitN(t, 4)

	var all strings.Builder
	byName := map[string]Event{}
	for _, ev := range evs {
		byName[ev.Name] = ev
		all.WriteString(ev.Name + " " + string(ev.Bytes) + " ")
		if ev.Err != nil {
			all.WriteString(ev.Err.Error() + "\n")
		}
	}
	if ev := byName["p"]; !ev.Invalid || !errors.Is(ev.Err, ErrOutsideDir) {
		t.Errorf("p (sidecar links outside): invalid=%v err=%v, want invalid with ErrOutsideDir", ev.Invalid, ev.Err)
	}
	for _, name := range []string{"q", "s"} {
		ev := byName[name]
		if !ev.Invalid || ev.Bytes != nil || !errors.Is(ev.Err, ErrOutsideDir) {
			t.Errorf("%s (module links outside): invalid=%v bytes=%d err=%v, want refused with ErrOutsideDir", name, ev.Invalid, len(ev.Bytes), ev.Err)
		}
		if _, _, _, err := r.Read(name); !errors.Is(err, ErrOutsideDir) {
			t.Errorf("Read(%s) = %v, want ErrOutsideDir", name, err)
		}
	}
	if ev := byName["r"]; ev.Invalid || string(ev.Bytes) != "\x00asm-p" {
		t.Errorf("r (links inside): invalid=%v bytes=%q, want p's bytes", ev.Invalid, ev.Bytes)
	}
	for _, info := range r.List() {
		all.WriteString(info.Name + " ")
		for _, err := range []error{info.ManifestErr, info.ModuleErr} {
			if err != nil {
				all.WriteString(err.Error() + "\n")
			}
		}
	}
	if _, _, _, err := r.Read("p"); err != nil {
		all.WriteString(err.Error())
	}
	for what, text := range map[string]string{"events and errors": all.String(), "log": logs.String()} {
		if strings.Contains(text, "SECRET") {
			t.Errorf("the %s repeat the outside file:\n%s", what, text)
		}
	}
	t.Logf("events and errors:\n%s", all.String())
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
