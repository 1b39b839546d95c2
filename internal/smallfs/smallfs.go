// Package smallfs gives a test a small file system of its own, so that it
// can fill it: a tmpfs of a given size, mounted on a new directory and
// unmounted when the test ends.
//
// Mounting needs root. Where the test cannot mount (not root, no mount
// command), Mount skips the test and says why, except when CI=true, where
// it fails it: there the test must run. RLIMIT_FSIZE is no substitute, as
// a process over it gets a signal rather than the ENOSPC of a full disk.
package smallfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory and returns it.
func Mount(tb testing.TB, size int64) string {
	tb.Helper()
	skip := func(why string) {
		tb.Helper()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("needs a small file system of its own: %s", why)
		}
		tb.Skipf("needs a small file system of its own: %s", why)
	}
	if os.Geteuid() != 0 {
		skip("mounting a tmpfs needs root")
	}
	dir, err := os.MkdirTemp("", "bulkhead-full-")
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		skip(fmt.Sprintf("mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out)))
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		_ = os.Remove(dir)
	})
	return dir
}

// Grow resizes a file system mounted by Mount to size bytes.
func Grow(tb testing.TB, dir string, size int64) {
	tb.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), dir).CombinedOutput(); err != nil {
		tb.Fatalf("remount %s: %v: %s", dir, err, bytes.TrimSpace(out))
	}
}
