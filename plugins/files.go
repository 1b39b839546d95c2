package plugins

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
)

// FileError is a plugin file the registry refuses to read: a module over
// the size cap (ErrTooLarge) or a symbolic link that leads outside the
// plugin directory (ErrOutsideDir). It never quotes the file's content.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }

// fileStat is what the stability check compares.
type fileStat struct {
	exists  bool
	bad     bool  // stat failed for another reason than absence
	err     error // why, when bad
	escapes bool  // a symbolic link that leads outside the directory
	size    int64
	mtime   time.Time
	id      fileID // inode and change time where the platform has them
}

func (a fileStat) same(b fileStat) bool {
	return a.exists == b.exists && a.bad == b.bad && a.escapes == b.escapes && a.size == b.size &&
		a.mtime.Equal(b.mtime) && a.id == b.id
}

// statFile looks at path, a file of the plugin directory, through an
// os.Root of the directory: a symbolic link is followed only while it
// stays inside. One that leads outside is a fileStat with escapes set
// (stability compared on the link itself).
func (r *Registry) statFile(path string) fileStat {
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return fileStat{bad: true, err: err}
	}
	defer root.Close()
	return statIn(root, filepath.Base(path))
}

func statIn(root *os.Root, base string) fileStat {
	fi, err := root.Stat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileStat{}
	case err != nil:
		if li, lerr := root.Lstat(base); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return fileStat{exists: true, escapes: true, size: li.Size(), mtime: li.ModTime(), id: idOf(li)}
		}
		return fileStat{bad: true, err: err}
	case !fi.Mode().IsRegular():
		return fileStat{}
	}
	return fileStat{exists: true, size: fi.Size(), mtime: fi.ModTime(), id: idOf(fi)}
}

// limit is the size cap of a module (module true) or a sidecar.
func (r *Registry) limit(module bool) int64 {
	if module {
		return r.opts.maxModule
	}
	return MaxManifestSize
}

// readStable reads path if it is unchanged across the read. A missing
// file is a zero fileStat and no error. A file over the size cap is
// refused from its size, before it is read, and the read stops one byte
// past the cap, so a file that grows meanwhile is never read whole. A
// refusal is a *FileError.
func (r *Registry) readStable(path string, module bool) ([]byte, fileStat, error) {
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, fileStat{bad: true, err: err}, err
	}
	defer root.Close()
	base := filepath.Base(path)
	before := statIn(root, base)
	switch {
	case before.bad:
		return nil, before, before.err
	case !before.exists:
		return nil, before, nil
	case before.escapes:
		return nil, before, &FileError{File: path, Err: ErrOutsideDir}
	}
	limit := r.limit(module)
	if before.size > limit {
		return nil, before, tooLarge(path, before.size, limit)
	}
	f, err := root.Open(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileStat{}, ErrUnstable
	}
	if err != nil {
		return nil, before, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	f.Close()
	if err != nil {
		return nil, before, err
	}
	if int64(len(b)) > limit {
		return nil, statIn(root, base), ErrUnstable // it grew while read
	}
	if after := statIn(root, base); !after.same(before) || int64(len(b)) != before.size {
		return nil, after, ErrUnstable
	}
	return b, before, nil
}

func tooLarge(path string, size, limit int64) *FileError {
	return &FileError{File: path, Err: fmt.Errorf("%w: %s, over the cap of %s", ErrTooLarge, abi.Size(size), abi.Size(limit))}
}
