package main

import (
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// TestCall_SandboxEscape runs the escape guest through `bulkhead call
// --allow-path`: every attempt to leave a mount is refused.
func TestCall_SandboxEscape(t *testing.T) {
	j := hosttest.NewJail(t)
	args := []string{"call", "../../host/testdata/" + hosttest.EscapeFixture, "fsop", "--data", t.TempDir()}
	for hostDir, guestDir := range j.AllowedPaths() {
		args = append(args, "--allow-path", hostDir+":"+guestDir)
	}
	for _, c := range hosttest.JailCases() {
		code, out, errOut := bulkhead(t, "", append(args, "--input", c.Op)...)
		if code != 0 || out != c.Want {
			t.Errorf("%s = %q (exit %d, stderr %q); want %q", c.Op, out, code, strings.TrimSpace(errOut), c.Want)
		}
	}
	j.CheckOutside(t)
}
