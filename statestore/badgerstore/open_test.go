package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// fill writes a run with n completed nodes.
func fill(t *testing.T, s statestore.Store, n int) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r", Workflow: "wf", Input: []byte("in")}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r", Node: fmt.Sprintf("n%03d", i), Output: []byte(strings.Repeat("o", 100))}); err != nil {
			t.Fatal(err)
		}
	}
}

func wantOpenError(t *testing.T, dir string, want error, mention ...string) {
	t.Helper()
	s, err := badgerstore.Open(dir)
	if err == nil {
		_ = s.Close()
		t.Fatalf("Open(%s) succeeded, want %v", dir, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("Open(%s) = %v, want %v", dir, err, want)
	}
	for _, m := range append(mention, dir) {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("Open error %q does not mention %q", err, m)
		}
	}
}

func garble(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("garbage garbage garbage garbage"), off); err != nil {
		t.Fatal(err)
	}
}

// crashCopy copies a store's directory while it is open, which leaves the
// files as a crash would: memtables not flushed, logs not truncated.
func crashCopy(t *testing.T, live string) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, live, dir)
	return dir
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--sparse=always", from+"/.", to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	_ = os.Remove(filepath.Join(to, "LOCK"))
}

func glob1(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		t.Fatalf("no file matches %s", pattern)
	}
	return m[0]
}

func TestOpen_ParentIsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, filepath.Join(file, "store"), badgerstore.ErrNotWritable, "not a directory")
	wantOpenError(t, file, badgerstore.ErrNotWritable, "not a directory")
}

func TestOpen_ReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; TestOpen_ParentIsFile covers unwritable paths")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	wantOpenError(t, dir, badgerstore.ErrNotWritable, "permission denied")
}

func TestOpen_InUse(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	wantOpenError(t, dir, badgerstore.ErrInUse)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir) // released by Close
	_ = s2.Close()
}

func TestOpen_Reopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	res, err := s.NodeResults(context.Background(), "r")
	if err != nil || len(res) != 50 {
		t.Fatalf("after reopen: %d results, %v", len(res), err)
	}
}

func TestOpen_CorruptManifest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 10)
	_ = s.Close()
	garble(t, filepath.Join(dir, "MANIFEST"), 0)
	wantOpenError(t, dir, badgerstore.ErrCorrupt, "manifest")
}

func TestOpen_CorruptTable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 100)
	_ = s.Close() // flushes the memtable into a table
	sst := glob1(t, filepath.Join(dir, "*.sst"))
	garble(t, sst, 100)
	garble(t, sst, 2000)
	wantOpenError(t, dir, badgerstore.ErrCorrupt, filepath.Base(sst), "checksum")
}

func TestOpen_CorruptLog(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		off     int64
	}{
		{"WALFirstEntry", "*.mem", 40},
		{"WALMiddle", "*.mem", 5000},
		{"ValueLog", "*.vlog", 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := t.TempDir()
			s := open(t, live)
			fill(t, s, 100)
			dir := crashCopy(t, live)
			_ = s.Close()
			log := glob1(t, filepath.Join(dir, tt.pattern))
			garble(t, log, tt.off)
			wantOpenError(t, dir, badgerstore.ErrCorrupt, filepath.Base(log))
		})
	}
}

// TestOpen_AfterCrash is the control of TestOpen_CorruptLog: the same crash
// image, undamaged or with a torn last write, opens with every record.
func TestOpen_AfterCrash(t *testing.T) {
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			live := t.TempDir()
			s := open(t, live)
			fill(t, s, 100)
			dir := crashCopy(t, live)
			_ = s.Close()
			if torn {
				badgerstore.TearLastWrite(t, glob1(t, filepath.Join(dir, "*.mem")))
			}
			s = open(t, dir)
			res, err := s.NodeResults(context.Background(), "r")
			if err != nil || len(res) != 100 {
				t.Fatalf("after crash: %d results, %v", len(res), err)
			}
		})
	}
}

// TestOpen_EmptyMemtable: a process killed between creating a memtable file
// and sizing it leaves a zero-byte .mem file; the store still opens, with
// every acknowledged record.
func TestOpen_EmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	res, err := s.NodeResults(context.Background(), "r")
	if err != nil || len(res) != 50 {
		t.Fatalf("after reopen: %d results, %v", len(res), err)
	}
}

// TestOpen_OrphanTable: a table file the MANIFEST does not reference (a
// flush or compaction killed while writing it) is not damage: Badger
// deletes it, and the store opens with every acknowledged record.
func TestOpen_OrphanTable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	half := append(bytes.Repeat([]byte{7}, 4096), make([]byte, 4096)...) // written, then zeros
	orphan := filepath.Join(dir, "999999.sst")
	if err := os.WriteFile(orphan, half, 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	res, err := s.NodeResults(context.Background(), "r")
	if err != nil || len(res) != 50 {
		t.Fatalf("after reopen: %d results, %v", len(res), err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan table still there: %v", err)
	}
}

// TestOpen_EmptyValueLog: the same for a value log file killed between
// creation and sizing.
func TestOpen_EmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill(t, s, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(vlogs) == 0 {
		t.Fatal("no value log")
	}
	sort.Strings(vlogs)
	next := filepath.Join(dir, fmt.Sprintf("%06d.vlog", tableIDOf(vlogs[len(vlogs)-1])+1))
	if err := os.WriteFile(next, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	res, err := s.NodeResults(context.Background(), "r")
	if err != nil || len(res) != 50 {
		t.Fatalf("after reopen: %d results, %v", len(res), err)
	}
}

func tableIDOf(path string) int {
	var id int
	fmt.Sscanf(filepath.Base(path), "%d", &id)
	return id
}
