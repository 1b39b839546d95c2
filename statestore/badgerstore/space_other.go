//go:build !linux

package badgerstore

import (
	"errors"
	"os"
)

var errNoStatfs = errors.New("free space is only measured on Linux")

// freeBytes is not measured on this platform: the reserve is not checked.
func freeBytes(string) (int64, error) { return 0, errNoStatfs }

// fallocate is not available on this platform.
func fallocate(string, int64, int64) error { return errNoStatfs }

func fileUsage(path string) (size, used int64) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0
	}
	return fi.Size(), fi.Size()
}
