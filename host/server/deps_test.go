package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The service is a library: nothing it builds on imports fx, a CLI package
// or anything under cmd.
func TestServer_DependsOnNoCommandCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, bad := range []string{"go.uber.org/fx", "github.com/spf13/", "github.com/bulkhead-run/bulkhead/cmd/"} {
			if strings.HasPrefix(d, bad) {
				t.Errorf("host/server depends on %s", d)
			}
		}
	}
	if len(deps) < 20 || !strings.Contains(string(out), "github.com/bulkhead-run/bulkhead/host/supervisor\n") {
		t.Fatalf("go list -deps listed %d packages, without the supervisor", len(deps))
	}
}
