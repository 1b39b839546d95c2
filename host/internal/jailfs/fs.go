package jailfs

import (
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// FS is one mount: a host directory seen by a guest. It implements wazero's
// experimental sys.FS.
type FS struct {
	root *os.Root
	ro   bool
}

var _ experimentalsys.FS = (*FS)(nil)

// Open opens the host directory dir as a mount, read-only when ro.
func Open(dir string, ro bool) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	learnEscapeError(r)
	return &FS{root: r, ro: ro}, nil
}

// Close closes the mount's directory. Files opened through it stay usable
// until they are closed.
func (j *FS) Close() error { return j.root.Close() }

// String returns the host directory.
func (j *FS) String() string { return j.root.Name() }

// name turns a path wazero hands over (relative to the mount, "" or "."
// for its top) into one for os.Root.
func name(p string) string {
	if p == "" || p == "/" {
		return "."
	}
	return p
}

const writeFlags = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
	experimentalsys.O_TRUNC | experimentalsys.O_APPEND

// OpenFile implements experimentalsys.FS.
func (j *FS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if j.ro && flag&writeFlags != 0 {
		return nil, experimentalsys.EROFS
	}
	p = name(p)
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		// os.Root follows a final link (inside the mount); the guest asked
		// it not to be.
		if fi, err := j.root.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	f, err := j.root.OpenFile(p, osFlag(flag), perm)
	if err != nil {
		return nil, errno(err)
	}
	return &file{f: f, ro: j.ro, append: flag&experimentalsys.O_APPEND != 0, nonblock: flag&experimentalsys.O_NONBLOCK != 0}, 0
}

// Lstat implements experimentalsys.FS.
func (j *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := j.root.Lstat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.
func (j *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := j.root.Stat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements experimentalsys.FS.
func (j *FS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	return errno(j.root.Mkdir(name(p), perm))
}

// Chmod implements experimentalsys.FS.
func (j *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	return errno(j.root.Chmod(name(p), perm))
}

// Rename implements experimentalsys.FS.
func (j *FS) Rename(from, to string) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	if e := j.checkMovedLink(from, to); e != 0 {
		return e
	}
	return errno(j.root.Rename(name(from), name(to)))
}

// Rmdir implements experimentalsys.FS.
func (j *FS) Rmdir(p string) experimentalsys.Errno { return j.remove(p, true) }

// Unlink implements experimentalsys.FS.
func (j *FS) Unlink(p string) experimentalsys.Errno { return j.remove(p, false) }

// remove removes a directory (dir) or any other entry. os.Root removes
// either, so the entry is looked at first.
func (j *FS) remove(p string, dir bool) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	p = name(p)
	fi, err := j.root.Lstat(p)
	switch {
	case err != nil:
		return errno(err)
	case dir && !fi.IsDir():
		return experimentalsys.ENOTDIR
	case !dir && fi.IsDir():
		return experimentalsys.EISDIR
	}
	return errno(j.root.Remove(p))
}

// Link implements experimentalsys.FS.
func (j *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	if e := j.checkMovedLink(oldPath, newPath); e != 0 {
		return e
	}
	return errno(j.root.Link(name(oldPath), name(newPath)))
}

// Symlink implements experimentalsys.FS.
func (j *FS) Symlink(target, link string) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	if !inside(target, link) {
		return experimentalsys.EPERM
	}
	return errno(j.root.Symlink(target, name(link)))
}

// Readlink implements experimentalsys.FS.
func (j *FS) Readlink(p string) (string, experimentalsys.Errno) {
	dst, err := j.root.Readlink(name(p))
	if err != nil {
		return "", errno(err)
	}
	return dst, 0
}

// Utimens implements experimentalsys.FS.
func (j *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if j.ro {
		return experimentalsys.EROFS
	}
	return errno(j.root.Chtimes(name(p), toTime(atim), toTime(mtim)))
}

// toTime turns a wazero timestamp into one for os.Root.Chtimes, where the
// zero time leaves the timestamp as it is.
func toTime(ns int64) time.Time {
	if ns == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// checkMovedLink refuses to rename or hard-link a symbolic link to where
// its target would leave the mount.
func (j *FS) checkMovedLink(from, to string) experimentalsys.Errno {
	fi, err := j.root.Lstat(name(from))
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return 0 // the operation itself reports a missing source
	}
	target, err := j.root.Readlink(name(from))
	if err != nil {
		return errno(err)
	}
	if !inside(target, to) {
		return experimentalsys.EPERM
	}
	return 0
}

// inside reports whether a link at path link (relative to the mount) with
// contents target names a path inside the mount, read lexically from the
// link's directory.
func inside(target, link string) bool {
	if target == "" || path.IsAbs(target) {
		return false
	}
	dir := path.Dir(strings.TrimSuffix(link, "/"))
	p := path.Join(dir, target)
	return p != ".." && !strings.HasPrefix(p, "../")
}

func osFlag(flag experimentalsys.Oflag) int {
	var f int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		f = os.O_RDWR
	case experimentalsys.O_WRONLY:
		f = os.O_WRONLY
	default:
		f = os.O_RDONLY
	}
	for _, m := range []struct {
		from experimentalsys.Oflag
		to   int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_DIRECTORY, oDirectory},
		{experimentalsys.O_DSYNC, oDsync},
		{experimentalsys.O_NONBLOCK, oNonblock},
	} {
		if flag&m.from != 0 {
			f |= m.to
		}
	}
	return f
}
