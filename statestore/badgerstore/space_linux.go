package badgerstore

import (
	"errors"
	"os"
	"syscall"
)

// fallocKeepSize is FALLOC_FL_KEEP_SIZE: allocate without changing the
// file's size.
const fallocKeepSize = 0x1

// freeBytes returns the bytes an unprivileged writer may still use on the
// file system of dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// fallocate allocates [off, off+n) of the file at path, keeping its size.
func fallocate(path string, off, n int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = syscall.Fallocate(int(f.Fd()), fallocKeepSize, off, n)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// fileUsage returns a file's size and the bytes allocated to it.
func fileUsage(path string) (size, used int64) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, 0
	}
	return st.Size, st.Blocks * 512
}
