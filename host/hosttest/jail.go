package hosttest

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// EscapeFixture is the guest of the sandbox-escape suite, relative to the
// repository's testdata directories: its export fsop runs one file
// operation ("OP ARG [ARG]") and outputs "ok", "ok DATA" or an errno name.
const EscapeFixture = "escape/escape.wasm"

// Jail is a directory tree for sandbox-escape tests. W and V are mounted
// read-write at /w and /v, R read-only at /r; Out is outside every mount.
// Links placed in the mounts before the guest runs point out of them.
type Jail struct {
	Base, Out, W, V, R string
	before             map[string]string
}

// NewJail builds the tree in a temporary directory of t.
func NewJail(t testing.TB) *Jail {
	t.Helper()
	base := t.TempDir()
	j := &Jail{
		Base: base,
		Out:  filepath.Join(base, "out"),
		W:    filepath.Join(base, "w"),
		V:    filepath.Join(base, "v"),
		R:    filepath.Join(base, "r"),
	}
	for _, d := range []string{j.Out, filepath.Join(j.Out, "sub"), j.W, filepath.Join(j.W, "sub"), j.V, j.R, filepath.Join(j.R, "sub")} {
		must(t, os.Mkdir(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(j.Out, "secret.txt"), []byte("secret"), 0o644))
	must(t, os.WriteFile(filepath.Join(j.W, "data.txt"), []byte("inside"), 0o644))
	must(t, os.WriteFile(filepath.Join(j.R, "in.txt"), []byte("read only"), 0o644))
	for link, target := range map[string]string{
		"w/hostfile": filepath.Join(j.Out, "secret.txt"),
		"w/hostdir":  j.Out,
		"w/rel":      "../out/secret.txt",
		"w/reldir":   "../out",
		"w/dangle":   "../out/new.txt",
		"w/tor":      "../r/in.txt",
		"w/inlink":   "data.txt",
		"r/self":     "in.txt",
		"r/tow":      "../w",
		"r/out":      j.Out,
	} {
		must(t, os.Symlink(target, filepath.Join(base, link)))
	}
	j.before = j.snapshot(t)
	return j
}

// AllowedPaths is the manifest's allowed_paths for the jail.
func (j *Jail) AllowedPaths() map[string]string {
	return map[string]string{j.W: "/w", j.V: "/v", "ro:" + j.R: "/r"}
}

// CheckOutside fails t if anything outside the writable mounts changed:
// the tree under Out, the read-only mount, and the entries of Base.
func (j *Jail) CheckOutside(t testing.TB) {
	t.Helper()
	if after := j.snapshot(t); !reflect.DeepEqual(after, j.before) {
		t.Errorf("outside the writable mounts:\nbefore %v\nafter  %v", j.before, after)
	}
}

// snapshot maps each path outside /w and /v to its content or link target.
func (j *Jail) snapshot(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(j.Base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == j.W || p == j.V {
			out[p] = "mount"
			return filepath.SkipDir
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[p] = "-> " + target
			return err
		case d.IsDir():
			out[p] = "dir"
		default:
			b, err := os.ReadFile(p)
			out[p] = string(b)
			return err
		}
		return nil
	})
	must(t, err)
	return out
}

// JailCase is one operation of the escape guest and the output it must
// give; the cases run in order, on one jail.
type JailCase struct{ Op, Want string }

// JailCases lists what the escape guest tries. Each attempt to leave a
// mount is refused with EPERM, each write to the read-only mount with
// EROFS; rename and link across two mounts give ENOSYS.
func JailCases() []JailCase {
	return []JailCase{
		// Links the guest makes.
		{"symlink ../../../../../../../../etc/hostname /w/hn", "EPERM"},
		{"read /w/hn", "ENOENT"},
		{"symlink ../out/secret.txt /w/s1", "EPERM"},
		{"symlink /etc/hostname /w/abs", "EPERM"},
		{"symlink ../../../../../../../.. /w/root", "EPERM"},
		{"symlink ../out /w/o", "EPERM"},
		{"write /w/o/new.txt", "ENOENT"},
		{"symlink ../../out /w/sub/o2", "EPERM"},
		{"symlink sub/../../out /w/trick", "EPERM"},
		{"symlink ../data.txt /w/sub/up", "ok"},
		{"read /w/sub/up", "ok inside"},
		// Links found in the mount.
		{"read /w/hostfile", "EPERM"},
		{"write /w/hostfile", "EPERM"},
		{"stat /w/hostfile", "EPERM"},
		{"lstat /w/hostfile", "ok link"},
		{"utimes /w/hostfile", "EPERM"},
		{"read /w/rel", "EPERM"},
		{"truncate /w/rel", "EPERM"},
		{"read /w/hostdir/secret.txt", "EPERM"},
		{"write /w/hostdir/new.txt", "EPERM"},
		{"list /w/hostdir", "EPERM"},
		{"unlink /w/hostdir/secret.txt", "EPERM"},
		{"mkdir /w/reldir/newdir", "EPERM"},
		{"write /w/dangle", "EPERM"},
		{"write /w/tor", "EPERM"},
		{"readlink /w/inlink", "ok data.txt"},
		{"read /w/inlink", "ok inside"},
		// Dot-dot.
		{"read /w/../out/secret.txt", "EPERM"},
		{"write /w/sub/../../out/x", "EPERM"},
		// Renames and hard links.
		{"rename /w/hostdir/secret.txt /w/stolen", "EPERM"},
		{"rename /w/data.txt /w/hostdir/moved", "EPERM"},
		{"rename /w/data.txt /w/../out/moved", "EPERM"},
		{"link /w/data.txt /w/hostdir/hl", "EPERM"},
		{"link /w/hostfile /w/hl", "EPERM"},
		{"rename /w/sub/up /w/up2", "EPERM"},
		{"link /w/sub/up /w/up3", "EPERM"},
		{"rename /w/data.txt /v/data.txt", "ENOSYS"},
		{"link /w/data.txt /v/hl", "ENOSYS"},
		// The read-only mount.
		{"read /r/in.txt", "ok read only"},
		{"write /r/new.txt", "EROFS"},
		{"write /r/in.txt", "EROFS"},
		{"append /r/in.txt", "EROFS"},
		{"write /r/self", "EROFS"},
		{"truncate /r/self", "EROFS"},
		{"ftruncate /r/in.txt", "EROFS"},
		{"futimes /r/in.txt", "EROFS"},
		{"utimes /r/self", "EROFS"},
		{"mkdir /r/d", "EROFS"},
		{"rmdir /r/sub", "EROFS"},
		{"unlink /r/in.txt", "EROFS"},
		{"rename /r/in.txt /r/moved", "EROFS"},
		{"link /r/in.txt /r/hl", "EROFS"},
		{"symlink in.txt /r/l", "EROFS"},
		{"read /r/tow/data.txt", "EPERM"},
		{"write /r/tow/data.txt", "EROFS"},
		{"read /r/out/secret.txt", "EPERM"},
		// What a mount is for still works.
		{"write /w/sub/new.txt", "ok"},
		{"read /w/sub/new.txt", "ok escaped"},
		{"rename /w/sub/new.txt /w/moved.txt", "ok"},
		{"link /w/moved.txt /w/sub/hard.txt", "ok"},
		{"mkdir /w/sub/d", "ok"},
		{"rmdir /w/sub/d", "ok"},
		{"unlink /w/sub/hard.txt", "ok"},
		{"list /w/sub", "ok up"},
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
