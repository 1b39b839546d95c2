package jailfs_test

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/bulkhead-run/bulkhead/host/internal/jailfs"
)

func open(t *testing.T, dir string, ro bool) *jailfs.FS {
	t.Helper()
	j, err := jailfs.Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func openFile(t *testing.T, j *jailfs.FS, p string, flag experimentalsys.Oflag) experimentalsys.File {
	t.Helper()
	f, e := j.OpenFile(p, flag, 0o644)
	if e != 0 {
		t.Fatalf("open %s: %v", p, e)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFS_Escapes: every way out of the mount gives EPERM.
func TestFS_Escapes(t *testing.T) {
	base := t.TempDir()
	w := filepath.Join(base, "w")
	os.Mkdir(w, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(w, "out"))
	os.Symlink("..", filepath.Join(w, "up"))
	j := open(t, w, false)

	if _, e := j.OpenFile("out", experimentalsys.O_RDONLY, 0); e != experimentalsys.EPERM {
		t.Errorf("open a link out = %v, want EPERM", e)
	}
	if _, e := j.OpenFile("up/w/x", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644); e != experimentalsys.EPERM {
		t.Errorf("create through a link out = %v, want EPERM", e)
	}
	if _, e := j.Stat("up"); e != experimentalsys.EPERM {
		t.Errorf("stat a link out = %v, want EPERM", e)
	}
	if st, e := j.Lstat("up"); e != 0 || st.Mode.Type() != os.ModeSymlink {
		t.Errorf("lstat a link out = %v, %v; want the link", st.Mode, e)
	}
	tests := []struct{ target, link string }{
		{"/etc", "abs"},
		{"..", "dotdot"},
		{"../w/x", "back"},
		{"../../x", "sub/x"},
		{"a/../../x", "trick"},
	}
	for _, tt := range tests {
		if e := j.Symlink(tt.target, tt.link); e != experimentalsys.EPERM {
			t.Errorf("symlink %s at %s = %v, want EPERM", tt.target, tt.link, e)
		}
	}
	os.Mkdir(filepath.Join(w, "sub"), 0o755)
	if e := j.Symlink("../x", "sub/in"); e != 0 {
		t.Errorf("symlink ../x at sub/in = %v, want success", e)
	}
	if e := j.Rename("sub/in", "moved"); e != experimentalsys.EPERM {
		t.Errorf("moving sub/in to the top = %v, want EPERM", e)
	}
	if e := j.Link("sub/in", "hard"); e != experimentalsys.EPERM {
		t.Errorf("hard-linking sub/in at the top = %v, want EPERM", e)
	}
	if e := j.Mkdir("up/w2", 0o755); e != experimentalsys.EPERM {
		t.Errorf("mkdir through a link out = %v, want EPERM", e)
	}
	if _, err := os.Lstat(filepath.Join(base, "w2")); !os.IsNotExist(err) {
		t.Errorf("a directory appeared outside the mount: %v", err)
	}
}

// TestFS_ReadOnly: a read-only mount refuses writes with EROFS, by path
// and on open files, and still reads.
func TestFS_ReadOnly(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Symlink("f", filepath.Join(dir, "l"))
	j := open(t, dir, true)
	for _, fl := range []experimentalsys.Oflag{experimentalsys.O_WRONLY, experimentalsys.O_RDWR, experimentalsys.O_CREAT, experimentalsys.O_TRUNC, experimentalsys.O_APPEND} {
		if _, e := j.OpenFile("l", fl, 0o644); e != experimentalsys.EROFS {
			t.Errorf("open with %#x = %v, want EROFS", fl, e)
		}
	}
	for name, e := range map[string]experimentalsys.Errno{
		"mkdir":   j.Mkdir("n", 0o755),
		"chmod":   j.Chmod("f", 0o600),
		"rename":  j.Rename("f", "g"),
		"rmdir":   j.Rmdir("d"),
		"unlink":  j.Unlink("f"),
		"link":    j.Link("f", "h"),
		"symlink": j.Symlink("f", "s"),
		"utimens": j.Utimens("l", 0, 0),
	} {
		if e != experimentalsys.EROFS {
			t.Errorf("%s = %v, want EROFS", name, e)
		}
	}
	f := openFile(t, j, "f", experimentalsys.O_RDONLY)
	if e := f.Truncate(0); e != experimentalsys.EROFS {
		t.Errorf("truncate = %v, want EROFS", e)
	}
	if e := f.Utimens(0, 0); e != experimentalsys.EROFS {
		t.Errorf("futimens = %v, want EROFS", e)
	}
	if e := f.SetAppend(true); e != experimentalsys.EROFS {
		t.Errorf("set append = %v, want EROFS", e)
	}
	buf := make([]byte, 4)
	if n, e := f.Read(buf); e != 0 || string(buf[:n]) != "x" {
		t.Errorf("read = %q, %v", buf[:n], e)
	}
}

// TestFS_Files: the file operations wasi-libc and Go's wasip1 port use.
func TestFS_Files(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, false)
	f := openFile(t, j, "f", experimentalsys.O_RDWR|experimentalsys.O_CREAT|experimentalsys.O_EXCL)
	if _, e := j.OpenFile("f", experimentalsys.O_RDWR|experimentalsys.O_CREAT|experimentalsys.O_EXCL, 0o644); e != experimentalsys.EEXIST {
		t.Errorf("exclusive create of an existing file = %v, want EEXIST", e)
	}
	if n, e := f.Write([]byte("hello")); n != 5 || e != 0 {
		t.Fatalf("write = %d, %v", n, e)
	}
	if n, e := f.Pwrite([]byte("J"), 0); n != 1 || e != 0 {
		t.Fatalf("pwrite = %d, %v", n, e)
	}
	buf := make([]byte, 16)
	if n, e := f.Pread(buf, 0); e != 0 || string(buf[:n]) != "Jello" {
		t.Errorf("pread = %q, %v", buf[:n], e)
	}
	if off, e := f.Seek(1, io.SeekStart); off != 1 || e != 0 {
		t.Errorf("seek = %d, %v", off, e)
	}
	if n, e := f.Read(buf); e != 0 || string(buf[:n]) != "ello" {
		t.Errorf("read = %q, %v", buf[:n], e)
	}
	if n, e := f.Read(buf); n != 0 || e != 0 {
		t.Errorf("read at the end = %d, %v; want 0, no error", n, e)
	}
	if e := f.SetAppend(true); e != 0 || !f.IsAppend() {
		t.Fatalf("set append = %v", e)
	}
	f.Seek(0, io.SeekStart)
	f.Write([]byte("!"))
	if e := f.Truncate(3); e != 0 {
		t.Errorf("truncate = %v", e)
	}
	if e := f.Sync(); e != 0 {
		t.Errorf("sync = %v", e)
	}
	if e := f.Datasync(); e != 0 {
		t.Errorf("datasync = %v", e)
	}
	mtim := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	if e := f.Utimens(experimentalsys.UTIME_OMIT, mtim); e != 0 {
		t.Errorf("futimens = %v", e)
	}
	st, e := f.Stat()
	if e != 0 || st.Size != 3 || st.Mtim != mtim || st.Ino == 0 {
		t.Errorf("stat = %+v, %v", st, e)
	}
	if ino, _ := f.Ino(); ino != st.Ino {
		t.Errorf("ino %d, stat says %d", ino, st.Ino)
	}
	if isDir, _ := f.IsDir(); isDir {
		t.Error("a file says it is a directory")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "Jel" {
		t.Errorf("host sees %q", b)
	}
	if e := j.Utimens("f", mtim, experimentalsys.UTIME_OMIT); e != 0 {
		t.Errorf("utimens = %v", e)
	}
	if st, _ := j.Stat("f"); st.Atim != mtim || st.Mtim != mtim {
		t.Errorf("times = %d, %d; want %d", st.Atim, st.Mtim, mtim)
	}
	f.Close()
	if _, e := f.Read(buf); e != experimentalsys.EBADF {
		t.Errorf("read after close = %v, want EBADF", e)
	}
	if e := f.Close(); e != 0 {
		t.Errorf("second close = %v", e)
	}

	if e := j.Unlink("f"); e != 0 {
		t.Errorf("unlink = %v", e)
	}
	if e := j.Unlink("f"); e != experimentalsys.ENOENT {
		t.Errorf("unlink a missing file = %v, want ENOENT", e)
	}
	j.Mkdir("d", 0o755)
	if e := j.Mkdir("d", 0o755); e != experimentalsys.EEXIST {
		t.Errorf("mkdir twice = %v, want EEXIST", e)
	}
	if e := j.Unlink("d"); e != experimentalsys.EISDIR {
		t.Errorf("unlink a directory = %v, want EISDIR", e)
	}
	openFile(t, j, "d/x", experimentalsys.O_WRONLY|experimentalsys.O_CREAT)
	if e := j.Rmdir("d"); e != experimentalsys.ENOTEMPTY {
		t.Errorf("rmdir a full directory = %v, want ENOTEMPTY", e)
	}
	if e := j.Rmdir("d/x"); e != experimentalsys.ENOTDIR {
		t.Errorf("rmdir a file = %v, want ENOTDIR", e)
	}
	if _, e := j.OpenFile("d/x", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0); e != experimentalsys.ENOTDIR {
		t.Errorf("open a file as a directory = %v, want ENOTDIR", e)
	}
	if _, e := j.OpenFile("d", experimentalsys.O_WRONLY, 0); e != experimentalsys.EISDIR {
		t.Errorf("open a directory for writing = %v, want EISDIR", e)
	}
	j.Symlink("d/x", "l")
	if _, e := j.OpenFile("l", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); e != experimentalsys.ELOOP {
		t.Errorf("open a link with O_NOFOLLOW = %v, want ELOOP", e)
	}
	if got, e := j.Readlink("l"); got != "d/x" || e != 0 {
		t.Errorf("readlink = %q, %v", got, e)
	}
}

// TestFS_Readdir: entries come with their inode numbers, and a rewind
// reads the directory again.
func TestFS_Readdir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	j := open(t, dir, false)
	d := openFile(t, j, ".", experimentalsys.O_RDONLY)
	if isDir, e := d.IsDir(); !isDir || e != 0 {
		t.Fatalf("IsDir = %v, %v", isDir, e)
	}
	var names []string
	for {
		ents, e := d.Readdir(2)
		if e != 0 {
			t.Fatal(e)
		}
		for _, ent := range ents {
			st, _ := j.Lstat(ent.Name)
			if ent.Ino == 0 || ent.Ino != st.Ino || ent.Type != 0 {
				t.Errorf("%s: ino %d type %v, lstat says ino %d", ent.Name, ent.Ino, ent.Type, st.Ino)
			}
			names = append(names, ent.Name)
		}
		if len(ents) < 2 {
			break
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("names = %v", names)
	}
	if _, e := d.Seek(0, io.SeekStart); e != 0 {
		t.Fatal(e)
	}
	if ents, e := d.Readdir(-1); e != 0 || len(ents) != 3 {
		t.Errorf("after a rewind: %v, %v", ents, e)
	}
	if _, e := d.Seek(1, io.SeekStart); e != experimentalsys.EISDIR {
		t.Errorf("seek in a directory = %v, want EISDIR", e)
	}
	if _, e := d.Read(make([]byte, 1)); e != experimentalsys.EISDIR {
		t.Errorf("read a directory = %v, want EISDIR", e)
	}
	f := openFile(t, j, "a", experimentalsys.O_RDONLY)
	if _, e := f.Readdir(-1); e != experimentalsys.EBADF {
		t.Errorf("readdir of a file = %v, want EBADF", e)
	}
}
