package pgtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestURL_Missing: without server binaries URL skips the test, and fails
// it under BULKHEAD_REQUIRE_POSTGRES=1.
func TestURL_Missing(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		URL(t)
		return
	}
	for _, tc := range []struct{ require, want string }{{"", "--- SKIP"}, {"1", "--- FAIL"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestURL_Missing$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "BULKHEAD_POSTGRES_BIN="+t.TempDir(), RequireEnv+"="+tc.require)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "PostgreSQL server binaries not found") {
			t.Errorf("%s=%q: want %s with the reason, got:\n%s", RequireEnv, tc.require, tc.want, out)
		}
	}
}
