package jailfs

import (
	"os"
	"syscall"
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

const (
	oDirectory = syscall.O_DIRECTORY
	oDsync     = syscall.O_DSYNC
	oNonblock  = syscall.O_NONBLOCK
)

// control runs fn on f's descriptor.
func control(f *os.File, fn func(fd int) error) experimentalsys.Errno {
	rc, err := f.SyscallConn()
	if err != nil {
		return errno(err)
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return errno(err)
	}
	return errno(opErr)
}

func setAppend(f *os.File, enable bool) experimentalsys.Errno {
	return control(f, func(fd int) error {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return err
		}
		if enable {
			fl |= unix.O_APPEND
		} else {
			fl &^= unix.O_APPEND
		}
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
		return err
	})
}

func datasync(f *os.File) experimentalsys.Errno {
	return control(f, unix.Fdatasync)
}

// futimens sets the times of the open file: utimensat with a NULL path
// acts on the descriptor itself.
func futimens(f *os.File, atim, mtim int64) experimentalsys.Errno {
	ts := [2]unix.Timespec{timespec(atim), timespec(mtim)}
	return control(f, func(fd int) error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
}

func timespec(ns int64) unix.Timespec {
	if ns == experimentalsys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}
