package host_test

import (
	"context"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// TestSandbox_Escape: a guest that makes links, follows the links it finds,
// climbs with "..", renames and hard-links across the edge of its mounts,
// and writes to a read-only mount through links and directly, is refused
// every time and changes nothing outside.
func TestSandbox_Escape(t *testing.T) {
	j := hosttest.NewJail(t)
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.Load(ctx, "escape", hosttest.Fixture(t, hosttest.EscapeFixture), abi.Manifest{AllowedPaths: j.AllowedPaths()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range hosttest.JailCases() {
		out, err := h.Call(ctx, "escape", "fsop", []byte(c.Op))
		if err != nil || string(out) != c.Want {
			t.Errorf("%s = %q, %v; want %q", c.Op, out, err, c.Want)
		}
	}
	j.CheckOutside(t)
}
