package jailfs

import (
	"errors"
	"os"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// escapeErr is the error os.Root gives for a path that would leave it. The
// standard library does not export it, so the first mount opened learns it
// by asking its root for "..", which no root allows.
var (
	escapeOnce sync.Once
	escapeErr  error
)

func learnEscapeError(r *os.Root) {
	escapeOnce.Do(func() {
		if _, err := r.Lstat(".."); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				escapeErr = pe.Err
			}
		}
	})
}

// errno maps an error of os.Root or *os.File to the errno the guest sees.
// A path that would leave the mount gives EPERM.
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	if escapeErr != nil && errors.Is(err, escapeErr) {
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(err)
}
