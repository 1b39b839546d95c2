//go:build !linux

package jailfs

import (
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

const (
	oDirectory = 0
	oDsync     = 0
	oNonblock  = 0
)

func setAppend(*os.File, bool) experimentalsys.Errno { return experimentalsys.ENOSYS }

func datasync(f *os.File) experimentalsys.Errno { return errno(f.Sync()) }

func futimens(*os.File, int64, int64) experimentalsys.Errno { return experimentalsys.ENOSYS }
