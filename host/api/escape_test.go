package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// TestAPI_SandboxEscape runs the escape guest through the service's call
// endpoint, with the mounts of a plugin manifest: every attempt to leave a
// mount is refused.
func TestAPI_SandboxEscape(t *testing.T) {
	j := hosttest.NewJail(t)
	f := newFixture(t, api.Config{}, false)
	m := abi.Manifest{AllowedPaths: j.AllowedPaths()}
	if _, err := f.h.Load(context.Background(), "escape", hosttest.Fixture(t, "../host/testdata/"+hosttest.EscapeFixture), m); err != nil {
		t.Fatal(err)
	}
	for _, c := range hosttest.JailCases() {
		code, b, _ := f.do(t, "POST", "/v1/plugins/escape/call?function=fsop", strings.NewReader(c.Op), token)
		if code != 200 || string(b) != c.Want {
			t.Errorf("%s = %q (status %d); want %q", c.Op, b, code, c.Want)
		}
	}
	j.CheckOutside(t)
}
