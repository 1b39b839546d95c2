package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// damagedData returns a data directory whose store holds three runs with
// 1.5 MiB inputs (in the value log) as a crash leaves it, and then garbage
// far past the last entry of the value log: the bytes a write cut short by
// a full disk leaves behind.
func damagedData(t *testing.T) (data, vlog string) {
	t.Helper()
	live := t.TempDir()
	s, err := badgerstore.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		in := bytes.Repeat([]byte{byte('a' + i)}, 3<<19)
		if _, _, err := s.CreateRun(context.Background(), statestore.Run{ID: fmt.Sprintf("r%d", i), Workflow: "wf", Input: in}); err != nil {
			t.Fatal(err)
		}
	}
	data = t.TempDir()
	dir := server.StoreDir(data)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "--sparse=always", live+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	_ = os.Remove(filepath.Join(dir, "LOCK"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(m) != 1 {
		t.Fatalf("value logs: %v", m)
	}
	f, err := os.OpenFile(m[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("garbage garbage garbage"), 40<<20); err != nil {
		t.Fatal(err)
	}
	return data, filepath.Base(m[0])
}

func TestStore_CheckAndRepair(t *testing.T) {
	data, vlog := damagedData(t)

	// A damaged store stops the commands that open it, with status 2 and
	// a pointer to the tools.
	flow := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(flow, []byte("name: f\nnodes:\n  a: {plugin: nodes, function: work}\n"), 0o600)
	code, _, stderr := bulkhead(t, "", "runs", "ls", "--data", data)
	if code != exitUsage || !strings.Contains(stderr, "bulkhead store check --data "+data) || !strings.Contains(stderr, vlog) {
		t.Errorf("runs ls on a damaged store: exit %d, stderr:\n%s", code, stderr)
	}

	code, out, stderr := bulkhead(t, "", "store", "check", "--data", data)
	t.Logf("store check:\n%s", out)
	if code != exitFailure || !strings.Contains(out, "problem: log "+vlog+": invalid entry at offset") ||
		!strings.Contains(out, fmt.Sprintf("followed by data at offset %d", 40<<20)) || !strings.Contains(out, "result: damaged") {
		t.Fatalf("store check: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = bulkhead(t, "", "store", "check", "--data", data, "-o", "json")
	var rep struct {
		Dir      string   `json:"dir"`
		Problems []string `json:"problems"`
		Result   string   `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != exitFailure || err != nil || len(rep.Problems) == 0 || !strings.HasPrefix(rep.Result, "damaged") {
		t.Fatalf("store check -o json: exit %d, %v\n%s", code, err, out)
	}

	code, out, stderr = bulkhead(t, "", "store", "repair", "--data", data)
	t.Logf("store repair:\n%s", out)
	if code != exitOK || !strings.Contains(out, "repaired: log "+vlog+": dropped everything from offset") ||
		!strings.Contains(out, "lost: nothing acknowledged") || !strings.Contains(out, "result: repaired") {
		t.Fatalf("store repair: exit %d\n%s%s", code, out, stderr)
	}

	code, out, stderr = bulkhead(t, "", "store", "check", "--data", data)
	if code != exitOK || !strings.Contains(out, "result: sound") {
		t.Fatalf("store check after repair: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = bulkhead(t, "", "runs", "ls", "--data", data)
	if code != exitOK || strings.Count(out, "wf") != 3 {
		t.Errorf("runs after repair: exit %d\n%s%s", code, out, stderr)
	}
}

func TestStore_RepairSaysWhatIsLost(t *testing.T) {
	data, vlog := damagedData(t)
	f, err := os.OpenFile(filepath.Join(server.StoreDir(data), vlog), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage garbage garbage"), 5000) // inside run r0's input
	f.Close()
	code, out, stderr := bulkhead(t, "", "store", "repair", "--data", data)
	t.Logf("store repair:\n%s", out)
	if code != exitOK || !strings.Contains(out, `lost: run "r0"`) || !strings.Contains(out, `lost: run "r2"`) {
		t.Fatalf("store repair: exit %d\n%s%s", code, out, stderr)
	}
}

func TestServe_CorruptStoreExits2(t *testing.T) {
	data, _ := damagedData(t)
	dir := svcDir(t, nil)
	code, _, stderr := bulkhead(t, "", "serve", "--listen", "127.0.0.1:0", "--plugins", filepath.Join(dir, "plugins"),
		"--workflows", filepath.Join(dir, "workflows"), "--data", data)
	if code != exitUsage || !strings.Contains(stderr, "bulkhead store check") || !strings.Contains(stderr, "corrupt") {
		t.Fatalf("serve on a damaged store: exit %d, stderr:\n%s", code, stderr)
	}
}
