package jailfs

import (
	"errors"
	"io"
	"io/fs"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// file is an open file or directory of a mount. Every method works on the
// open descriptor, never on a path.
type file struct {
	f        *os.File
	ro       bool
	append   bool
	nonblock bool
	closed   bool
	// stat caches what Dev, Ino and IsDir report; none of it changes
	// while the descriptor is open.
	stat *sys.Stat_t
}

var _ experimentalsys.PollableFile = (*file)(nil)

func (f *file) cached() (*sys.Stat_t, experimentalsys.Errno) {
	if f.stat == nil {
		if _, e := f.Stat(); e != 0 {
			return nil, e
		}
	}
	return f.stat, 0
}

// Dev implements experimentalsys.File.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return 0, e
	}
	return st.Dev, 0
}

// Ino implements experimentalsys.File.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return 0, e
	}
	return st.Ino, 0
}

// IsDir implements experimentalsys.File.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return false, e
	}
	return st.Mode.IsDir(), 0
}

// IsAppend implements experimentalsys.File.
func (f *file) IsAppend() bool { return f.append }

// SetAppend implements experimentalsys.File. It changes the open
// descriptor's flags rather than opening the file again by name.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if dir, _ := f.IsDir(); dir {
		return experimentalsys.EISDIR
	}
	if enable && f.ro {
		return experimentalsys.EROFS
	}
	if e := setAppend(f.f, enable); e != 0 {
		return e
	}
	f.append = enable
	return 0
}

// IsNonblock implements experimentalsys.PollableFile.
func (f *file) IsNonblock() bool { return f.nonblock }

// SetNonblock implements experimentalsys.PollableFile. Files and
// directories never block, so only the flag the guest reads back changes.
func (f *file) SetNonblock(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	f.nonblock = enable
	return 0
}

// Poll implements experimentalsys.Pollable: a file is always ready.
func (f *file) Poll(experimentalsys.Pflag, int32) (bool, experimentalsys.Errno) {
	if f.closed {
		return false, experimentalsys.EBADF
	}
	return true, 0
}

// Stat implements experimentalsys.File.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	fi, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, f.errno(err)
	}
	st := sys.NewStat_t(fi)
	f.stat = &st
	return st, 0
}

// Read implements experimentalsys.File.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if e := f.readable(); e != 0 || len(buf) == 0 {
		return 0, e
	}
	n, err := f.f.Read(buf)
	return n, f.errno(err)
}

// Pread implements experimentalsys.File.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if e := f.readable(); e != 0 || len(buf) == 0 {
		return 0, e
	}
	n, err := f.f.ReadAt(buf, off)
	return n, f.errno(err)
}

// fileOffset is int64 under a name of its own: go vet expects any method
// called Seek to be io.Seeker's, and wazero's returns an Errno.
type fileOffset = int64

// Seek implements experimentalsys.File. A directory only rewinds, which
// restarts Readdir.
func (f *file) Seek(offset fileOffset, whence int) (int64, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if dir, _ := f.IsDir(); dir && (offset != 0 || whence != io.SeekStart) {
		return 0, experimentalsys.EISDIR
	}
	n, err := f.f.Seek(offset, whence)
	return n, f.errno(err)
}

// Readdir implements experimentalsys.File. Entries are read relative to
// the open directory (fstatat), with their inode numbers.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if dir, e := f.IsDir(); e != 0 {
		return nil, e
	} else if !dir {
		return nil, experimentalsys.EBADF
	}
	fis, err := f.f.Readdir(n)
	if e := f.errno(err); e != 0 {
		if e == experimentalsys.ENOTDIR || e == experimentalsys.EINVAL {
			e = experimentalsys.EBADF
		}
		return nil, e
	}
	out := make([]experimentalsys.Dirent, 0, len(fis))
	for _, fi := range fis {
		out = append(out, experimentalsys.Dirent{Ino: sys.NewStat_t(fi).Ino, Name: fi.Name(), Type: fi.Mode().Type()})
	}
	return out, 0
}

// Write implements experimentalsys.File.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, f.closedErrno()
	}
	n, err := f.f.Write(buf)
	return n, f.errno(err)
}

// Pwrite implements experimentalsys.File.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if len(buf) == 0 {
		return 0, f.closedErrno()
	}
	n, err := f.f.WriteAt(buf, off)
	return n, f.errno(err)
}

// Truncate implements experimentalsys.File.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	if dir, _ := f.IsDir(); dir {
		return experimentalsys.EISDIR
	}
	if f.ro {
		return experimentalsys.EROFS
	}
	return f.errno(f.f.Truncate(size))
}

// Sync implements experimentalsys.File.
func (f *file) Sync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return f.errno(f.f.Sync())
}

// Datasync implements experimentalsys.File.
func (f *file) Datasync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return datasync(f.f)
}

// Utimens implements experimentalsys.File.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if f.ro {
		return experimentalsys.EROFS
	}
	return futimens(f.f, atim, mtim)
}

// Close implements experimentalsys.File.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return errno(f.f.Close())
}

func (f *file) closedErrno() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return 0
}

// readable reports EBADF for a closed file and EISDIR for a directory,
// which Go's os package reports as EINVAL.
func (f *file) readable() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if dir, _ := f.IsDir(); dir {
		return experimentalsys.EISDIR
	}
	return 0
}

// errno is the package's errno plus what only an open file gives: end of
// file is no error, and a closed file is EBADF.
func (f *file) errno(err error) experimentalsys.Errno {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return 0
	case f.closed, errors.Is(err, fs.ErrClosed):
		return experimentalsys.EBADF
	}
	return errno(err)
}
