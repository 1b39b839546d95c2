package plugins

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/internal/digest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder collects the events a handler receives.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) handle(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

// waitN waits until at least n events arrived and returns them all.
func (r *recorder) waitN(t *testing.T, n int) []Event {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(r.events()) >= n })
	return r.events()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet asserts that no event beyond the first n arrives within d.
func (r *recorder) quiet(t *testing.T, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if evs := r.events(); len(evs) != n {
		t.Fatalf("%d events, want %d: %v", len(evs), n, kinds(evs))
	}
}

func kinds(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind.String() + " " + ev.Name + " " + digest.Short(ev.Version)
	}
	return out
}

// start returns a started registry of dir whose events go to the returned
// recorder. It is stopped at the end of the test.
func start(t *testing.T, dir string, opts ...Option) (*Registry, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts = append([]Option{WithDebounce(30 * time.Millisecond), WithRescanInterval(0), WithHandler(rec.handle)}, opts...)
	r, err := New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r, rec
}

func module(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return append([]byte("\x00asm\x01\x00\x00\x00"), b...)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRename writes b beside path and renames it over path.
func writeRename(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, b)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func checkEvent(t *testing.T, ev Event, kind Kind, name string, b []byte) {
	t.Helper()
	if ev.Kind != kind || ev.Name != name {
		t.Fatalf("event %s %s, want %s %s", ev.Kind, ev.Name, kind, name)
	}
	if b != nil {
		if ev.Version != digest.Of(b) {
			t.Errorf("%s %s: version %s, want %s", kind, name, digest.Short(ev.Version), digest.Short(digest.Of(b)))
		}
		if (kind == Added || kind == Changed) && string(ev.Bytes) != string(b) {
			t.Errorf("%s %s: %d bytes differ from the %d written", kind, name, len(ev.Bytes), len(b))
		}
	}
}

func TestRegistry_InitialScan(t *testing.T) {
	dir := t.TempDir()
	a, b := module(t, 100), module(t, 200)
	write(t, filepath.Join(dir, "a.wasm"), a)
	write(t, filepath.Join(dir, "b.v2.wasm"), b)
	write(t, filepath.Join(dir, "b.v2.yaml"), []byte("memory: 8MiB\npreset: api\n"))
	// None of these is a plugin.
	for _, name := range []string{".hidden.wasm", "c.wasm.tmp", "c.wasm~", ".c.wasm.swp", "notes.txt", "bad name.wasm", "orphan.yml"} {
		write(t, filepath.Join(dir, name), module(t, 10))
	}
	if err := os.Mkdir(filepath.Join(dir, "d.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}

	r, rec := start(t, dir)
	list := r.List()
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b.v2" {
		t.Fatalf("List() = %+v, want a and b.v2", list)
	}
	if list[0].Version != digest.Of(a) || list[0].Size != int64(len(a)) || list[0].Path != filepath.Join(dir, "a.wasm") || list[0].ModTime.IsZero() {
		t.Errorf("a: %+v", list[0])
	}
	if list[1].Version != digest.Of(b) || list[1].Manifest.Memory != 8<<20 || list[1].Manifest.Preset != "api" {
		t.Errorf("b.v2: %+v", list[1])
	}
	evs := rec.waitN(t, 2)
	checkEvent(t, evs[0], Added, "a", a)
	checkEvent(t, evs[1], Added, "b.v2", b)
	if evs[1].Manifest.Memory != 8<<20 {
		t.Errorf("Added b.v2 carries manifest %+v", evs[1].Manifest)
	}
	if info, ok := r.Get("b.v2"); !ok || info.Version != digest.Of(b) {
		t.Errorf("Get(b.v2) = %+v, %v", info, ok)
	}
	if _, ok := r.Get("c"); ok {
		t.Error("Get(c) found an ignored file")
	}
	rec.quiet(t, 2, 100*time.Millisecond)
}

func TestRegistry_Events(t *testing.T) {
	dir := t.TempDir()
	_, rec := start(t, dir)
	wasm, yaml := filepath.Join(dir, "p.wasm"), filepath.Join(dir, "p.yaml")

	v1 := module(t, 1000)
	write(t, wasm, v1)
	checkEvent(t, rec.waitN(t, 1)[0], Added, "p", v1)

	v2 := module(t, 1000)
	write(t, wasm, v2)
	checkEvent(t, rec.waitN(t, 2)[1], Changed, "p", v2)

	// Touching a file without changing its bytes is no event.
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(wasm, now, now); err != nil {
		t.Fatal(err)
	}

	write(t, yaml, []byte("timeout: 3s\n"))
	ev := rec.waitN(t, 3)[2]
	checkEvent(t, ev, ManifestChanged, "p", v2)
	if ev.Manifest.Timeout.String() != "3s" || ev.Err != nil || ev.Invalid {
		t.Errorf("manifest event %+v", ev)
	}

	write(t, yaml, []byte("timeout: 3s\nmemroy: 1MiB\n"))
	ev = rec.waitN(t, 4)[3]
	checkEvent(t, ev, ManifestChanged, "p", v2)
	var me *ManifestError
	if !errors.As(ev.Err, &me) || me.Line != 2 || me.File != yaml {
		t.Errorf("broken manifest: err %v, want a *ManifestError at %s:2", ev.Err, yaml)
	}
	if ev.Manifest.Timeout.String() != "3s" || ev.Invalid {
		t.Errorf("broken manifest: %+v, want the last good one in force", ev)
	}

	if err := os.Remove(yaml); err != nil {
		t.Fatal(err)
	}
	ev = rec.waitN(t, 5)[4]
	checkEvent(t, ev, ManifestChanged, "p", v2)
	if ev.Manifest.Timeout != 0 || ev.Err != nil || ev.Invalid {
		t.Errorf("removed manifest: %+v, want the zero manifest", ev)
	}

	if err := os.Remove(wasm); err != nil {
		t.Fatal(err)
	}
	checkEvent(t, rec.waitN(t, 6)[5], Removed, "p", v2)
	rec.quiet(t, 6, 100*time.Millisecond)
}

func TestRegistry_WriteThenRename(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	v1, v2 := module(t, 5000), module(t, 5000)
	write(t, wasm, v1)
	r, rec := start(t, dir)
	checkEvent(t, rec.waitN(t, 1)[0], Added, "p", v1)

	writeRename(t, wasm, v2)
	checkEvent(t, rec.waitN(t, 2)[1], Changed, "p", v2)
	rec.quiet(t, 2, 100*time.Millisecond)
	if info, _ := r.Get("p"); info.Version != digest.Of(v2) {
		t.Errorf("Get(p).Version = %s, want %s", digest.Short(info.Version), digest.Short(digest.Of(v2)))
	}
}

// fakeClock is a debounce clock that moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(now func() time.Time) Option { return optionFunc(func(o *options) { o.now = now }) }

func withScheduled(f func(path string, size int64)) Option {
	return optionFunc(func(o *options) { o.scheduled = f })
}

// A copy that writes the file in place, in chunks, with pauses shorter than
// the debounce, is one Changed event with the complete bytes. The pauses
// are measured by the registry's own clock, which the writer moves, so a
// stalled machine cannot stretch one past the debounce.
func TestRegistry_SlowInPlaceCopy(t *testing.T) {
	const debounce = 50 * time.Millisecond
	dir := t.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	v1, v2 := module(t, 1<<10), module(t, 1<<20)
	write(t, wasm, v1)
	clk := &fakeClock{t: time.Now()}
	var seen atomic.Int64 // the largest size the registry saw the file at
	_, rec := start(t, dir, WithDebounce(debounce), withClock(clk.now),
		withScheduled(func(path string, size int64) {
			if path == wasm {
				seen.Store(max(seen.Load(), size))
			}
		}))
	checkEvent(t, rec.waitN(t, 1)[0], Added, "p", v1)

	f, err := os.OpenFile(wasm, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 16 chunks a quarter debounce apart: the copy lasts four debounces,
	// and the registry sees the file after each chunk.
	chunk := len(v2) / 16
	for off := 0; off < len(v2); off += chunk {
		end := min(off+chunk, len(v2))
		if _, err := f.Write(v2[off:end]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("the registry to see %d bytes", end), func() bool { return seen.Load() >= int64(end) })
		clk.advance(debounce / 4)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The copy is done: let the registry's time run until it reads the file.
	waitFor(t, "2 events", func() bool {
		clk.advance(debounce / 10)
		return len(rec.events()) >= 2
	})
	checkEvent(t, rec.events()[1], Changed, "p", v2)
	clk.advance(4 * debounce)
	rec.quiet(t, 2, 2*debounce)
}

func TestRegistry_GarbageManifest(t *testing.T) {
	dir := t.TempDir()
	v1 := module(t, 100)
	write(t, filepath.Join(dir, "p.wasm"), v1)
	yaml := filepath.Join(dir, "p.yaml")
	write(t, yaml, []byte("memory: 8MiB\npool: {max: 4\nconfig: x\n"))
	r, rec := start(t, dir)

	info, ok := r.Get("p")
	var me *ManifestError
	if !ok || !info.Invalid || !errors.As(info.ManifestErr, &me) || me.File != yaml || me.Line == 0 {
		t.Fatalf("Get(p) = %+v, want an invalid plugin with a file:line reason", info)
	}
	if !strings.HasPrefix(info.ManifestErr.Error(), fmt.Sprintf("%s:%d: ", yaml, me.Line)) {
		t.Errorf("reason %q does not start with file:line", info.ManifestErr)
	}
	ev := rec.waitN(t, 1)[0]
	checkEvent(t, ev, Added, "p", v1)
	if !ev.Invalid || ev.Err == nil {
		t.Errorf("Added %+v, want Invalid with Err", ev)
	}
	if _, _, _, err := r.Read("p"); !errors.As(err, &me) {
		t.Errorf("Read(p) error %v, want the manifest's", err)
	}

	// Garbage bytes on line 2.
	write(t, yaml, []byte("memory: 8MiB\n\x00\x01\x02garbage\n"))
	ev = rec.waitN(t, 2)[1]
	if ev.Kind != ManifestChanged || !ev.Invalid || !errors.As(ev.Err, &me) || me.Line != 2 {
		t.Errorf("garbage sidecar: %+v, want ManifestChanged, still invalid, reason on line 2", ev)
	}
	if info, _ := r.Get("p"); !strings.HasPrefix(info.ManifestErr.Error(), yaml+":2: ") {
		t.Errorf("reason %q", info.ManifestErr)
	}

	write(t, yaml, []byte("memory: 8MiB\n"))
	ev = rec.waitN(t, 3)[2]
	checkEvent(t, ev, ManifestChanged, "p", v1)
	if ev.Invalid || ev.Err != nil || ev.Manifest.Memory != 8<<20 {
		t.Errorf("fixed manifest: %+v", ev)
	}
}

func TestRegistry_PolicyValidator(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "p.wasm"), module(t, 10))
	write(t, filepath.Join(dir, "p.yaml"), []byte("memory: 8MiB\npreset: api\npolicy:\n  retries: -1\n"))
	write(t, filepath.Join(dir, "q.wasm"), module(t, 10))
	write(t, filepath.Join(dir, "q.yaml"), []byte("preset: nope\n"))
	write(t, filepath.Join(dir, "ok.wasm"), module(t, 10))
	write(t, filepath.Join(dir, "ok.yaml"), []byte("preset: api\npolicy: {retries: 3}\n"))
	errBad := errors.New("bad policy")
	var gotPolicy sync.Map
	validate := func(preset string, raw []byte) error {
		gotPolicy.Store(preset, string(raw))
		if preset != "api" || strings.Contains(string(raw), "-1") {
			return errBad
		}
		return nil
	}
	r, _ := start(t, dir, WithPolicyValidator(validate))
	for _, tt := range []struct {
		name string
		line int
	}{{"p", 3}, {"q", 1}} {
		info, _ := r.Get(tt.name)
		var me *ManifestError
		if !errors.Is(info.ManifestErr, errBad) || !errors.As(info.ManifestErr, &me) || me.Line != tt.line || !info.Invalid {
			t.Errorf("%s: %+v, want bad policy at line %d", tt.name, info, tt.line)
		}
	}
	info, _ := r.Get("ok")
	if info.ManifestErr != nil || info.Manifest.Preset != "api" || !strings.Contains(string(info.Manifest.PolicyYAML), "retries: 3") {
		t.Errorf("ok: %+v (policy %q)", info, info.Manifest.PolicyYAML)
	}
}

// With the watcher off, the periodic rescan alone sees every change.
func TestRegistry_RescanCatchesMissedEvents(t *testing.T) {
	dir := t.TempDir()
	_, rec := start(t, dir, WithFSNotify(false), WithRescanInterval(40*time.Millisecond))
	wasm := filepath.Join(dir, "p.wasm")
	v1, v2 := module(t, 100), module(t, 100)
	write(t, wasm, v1)
	checkEvent(t, rec.waitN(t, 1)[0], Added, "p", v1)
	// Same size, mtime set back: only the inode and change time differ.
	writeRename(t, wasm, v2)
	checkEvent(t, rec.waitN(t, 2)[1], Changed, "p", v2)
	write(t, filepath.Join(dir, "p.yaml"), []byte("pool: {max: 3}\n"))
	ev := rec.waitN(t, 3)[2]
	checkEvent(t, ev, ManifestChanged, "p", v2)
	if ev.Manifest.Pool.Max != 3 {
		t.Errorf("manifest %+v", ev.Manifest)
	}
	if err := os.Remove(wasm); err != nil {
		t.Fatal(err)
	}
	checkEvent(t, rec.waitN(t, 4)[3], Removed, "p", v2)
}

// A sidecar written just after its module still arrives with it.
func TestRegistry_SidecarWithModule(t *testing.T) {
	dir := t.TempDir()
	_, rec := start(t, dir, WithDebounce(100*time.Millisecond))
	v1 := module(t, 100)
	write(t, filepath.Join(dir, "p.wasm"), v1)
	write(t, filepath.Join(dir, "p.yaml"), []byte("memory: 16MiB\n"))
	ev := rec.waitN(t, 1)[0]
	checkEvent(t, ev, Added, "p", v1)
	if ev.Manifest.Memory != 16<<20 {
		t.Errorf("Added without its sidecar: %+v", ev.Manifest)
	}
	rec.quiet(t, 1, 200*time.Millisecond)
}

func TestRegistry_FiftyPlugins(t *testing.T) {
	dir := t.TempDir()
	mods := make(map[string][]byte)
	for i := range 50 {
		name := fmt.Sprintf("plugin-%02d", i)
		mods[name] = module(t, 64<<10)
		write(t, filepath.Join(dir, name+".wasm"), mods[name])
		if i%2 == 0 {
			write(t, filepath.Join(dir, name+".yaml"), fmt.Appendf(nil, "pool: {max: %d}\n", i+1))
		}
	}
	r, rec := start(t, dir)
	list := r.List()
	if len(list) != 50 {
		t.Fatalf("List() has %d plugins, want 50", len(list))
	}
	for i, info := range list {
		if info.Version != digest.Of(mods[info.Name]) {
			t.Errorf("%s: wrong version", info.Name)
		}
		if want := map[bool]int{true: i + 1, false: 0}[i%2 == 0]; info.Manifest.Pool.Max != want {
			t.Errorf("%s: pool max %d, want %d", info.Name, info.Manifest.Pool.Max, want)
		}
	}
	evs := rec.waitN(t, 50)
	for _, ev := range evs {
		checkEvent(t, ev, Added, ev.Name, mods[ev.Name])
	}
}

func TestRegistry_Read(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	v1, v2 := module(t, 100), module(t, 100)
	write(t, wasm, v1)
	r, _ := start(t, dir, WithDebounce(time.Hour))
	// The watcher will not report v2 for an hour; Read sees it now.
	write(t, wasm, v2)
	write(t, filepath.Join(dir, "p.yaml"), []byte("memory: 4MiB\n"))
	b, version, m, err := r.Read("p")
	if err != nil || string(b) != string(v2) || version != digest.Of(v2) || m.Memory != 4<<20 {
		t.Errorf("Read(p) = %d bytes, %s, %+v, %v", len(b), digest.Short(version), m, err)
	}
	// A broken sidecar: the last good manifest the registry knows (none
	// read yet beyond the zero one, which p ran with).
	write(t, filepath.Join(dir, "p.yaml"), []byte("memory: [\n"))
	if _, _, m, err := r.Read("p"); err != nil || m.Memory != 0 {
		t.Errorf("Read(p) with a broken sidecar = %+v, %v, want the zero manifest", m, err)
	}
	if _, _, _, err := r.Read("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read(missing) error %v, want ErrNotFound", err)
	}
	for _, name := range []string{"../p", ".p", "", "a/b"} {
		if _, _, _, err := r.Read(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Read(%q) error %v, want ErrInvalidName", name, err)
		}
	}
}

func TestRegistry_Lifecycle(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Error("New with no directory")
	}
	if _, err := New("x", WithDebounce(0)); err == nil {
		t.Error("New with zero debounce")
	}
	if _, err := New("x", WithFSNotify(false), WithRescanInterval(0)); err == nil {
		t.Error("New that could never see a change")
	}

	r, err := New(filepath.Join(t.TempDir(), "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("Start on a missing directory")
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}

	r, err = New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	for range 2 {
		if err := r.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("Start after Stop: %v, want ErrStarted", err)
	}
}

// Stop delivers every queued event before it returns.
func TestRegistry_StopDrains(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		write(t, filepath.Join(dir, fmt.Sprintf("p%d.wasm", i)), module(t, 10))
	}
	var n int
	var mu sync.Mutex
	slow := func(Event) {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		n++
		mu.Unlock()
	}
	r, err := New(dir, WithHandler(slow))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 20 {
		t.Errorf("%d events delivered before Stop returned, want 20", n)
	}
}

// Stop with a context that ends first returns its error; the delivery
// goroutine still exits (goleak checks it in TestMain).
func TestRegistry_StopTimeout(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		write(t, filepath.Join(dir, fmt.Sprintf("p%d.wasm", i)), module(t, 10))
	}
	release := make(chan struct{})
	r, err := New(dir, WithHandler(func(Event) { <-release }))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// Replacing a module many times, by rename and in place, at random gaps
// around the debounce: every event carries one complete version, versions
// never repeat back to back, and the last event is the last version.
func TestRegistry_ReplaceHammer(t *testing.T) {
	const debounce = 20 * time.Millisecond
	dir := t.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	versions := [][]byte{module(t, 64<<10), module(t, 96<<10), module(t, 32<<10)}
	valid := map[string]bool{}
	for _, v := range versions {
		valid[digest.Of(v)] = true
	}
	write(t, wasm, versions[0])
	_, rec := start(t, dir, WithDebounce(debounce))
	rec.waitN(t, 1)

	rounds := 30
	if testing.Short() {
		rounds = 15
	}
	last := versions[0]
	for i := range rounds {
		v := versions[(i+1)%len(versions)]
		if i%3 == 2 {
			// In place, in two halves.
			f, err := os.OpenFile(wasm, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(v[:len(v)/2]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(debounce / 4)
			if _, err := f.Write(v[len(v)/2:]); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			writeRename(t, wasm, v)
		}
		last = v
		time.Sleep(time.Duration(i%4) * debounce / 2)
	}
	want := digest.Of(last)
	waitFor(t, "the last version", func() bool {
		evs := rec.events()
		return evs[len(evs)-1].Version == want
	})
	evs := rec.events()
	for i, ev := range evs {
		if !valid[ev.Version] || digest.Of(ev.Bytes) != ev.Version {
			t.Fatalf("event %d carries bytes of no version written (%d bytes)", i, len(ev.Bytes))
		}
		if i > 0 && ev.Version == evs[i-1].Version {
			t.Errorf("event %d repeats version %s", i, digest.Short(ev.Version))
		}
	}
	t.Logf("%d replacements, %d events", rounds, len(evs)-1)
}

// BenchmarkRegistry_Start measures Start on a directory of 50 plugins of
// 2 MiB each (the size of a Go guest), half with a sidecar.
func BenchmarkRegistry_Start(b *testing.B) {
	dir := b.TempDir()
	mod := make([]byte, 2<<20)
	for i := range 50 {
		mod[0] = byte(i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%02d.wasm", i)), mod, 0o644); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%02d.yaml", i)), []byte("memory: 64MiB\npool: {max: 4}\npreset: api\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		r, err := New(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if len(r.List()) != 50 {
			b.Fatal("not 50 plugins")
		}
		b.StopTimer()
		if err := r.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRegistry_ReplaceLatency measures the time from a
// write-then-rename to its Changed event, with the default debounce.
func BenchmarkRegistry_ReplaceLatency(b *testing.B) {
	dir := b.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	got := make(chan struct{}, 1)
	r, err := New(dir, WithHandler(func(ev Event) {
		if ev.Kind == Changed {
			got <- struct{}{}
		}
	}))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(wasm, []byte("v0"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Stop(context.Background())
	b.ResetTimer()
	for i := range b.N {
		tmp := filepath.Join(dir, ".p.wasm.tmp")
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "v%d", i+1), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, wasm); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"hello", true}, {"hello-world_2", true}, {"a.b.c", true}, {"_x", true}, {"9", true},
		{"", false}, {".hidden", false}, {"-flag", false}, {"a b", false}, {"a/b", false},
		{"..", false}, {"héllo", false}, {"a\n", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.give); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}
