//go:build linux

package badgerstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// seekData returns the offset of the first data (non-hole) byte at or after off.
func seekData(f *os.File, off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
}
