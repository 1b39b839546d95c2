package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// bigRuns writes n runs whose inputs (1.5 MiB) go to the value log, and
// leaves a crash image of the store with them (logs not truncated).
func bigRuns(t *testing.T, n int) string {
	t.Helper()
	live := t.TempDir()
	s := open(t, live)
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		if _, _, err := s.CreateRun(context.Background(), statestore.Run{ID: id, Workflow: "wf", Input: bigInput(i)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := crashCopy(t, live)
	_ = s.Close()
	return dir
}

func bigInput(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 3<<19) }

func TestRepair_GarbageAfterLastWrite(t *testing.T) {
	dir := bigRuns(t, 3)
	vlog := glob1(t, filepath.Join(dir, "*.vlog"))
	// A write torn by the disk filling, with data past it: the store no
	// longer opens.
	badgerstore.TearLastWrite(t, vlog)
	end := badgerstore.LogEnd(t, vlog)
	garble(t, vlog, end+8192)
	wantOpenError(t, dir, badgerstore.ErrCorrupt, filepath.Base(vlog))

	rep, err := badgerstore.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], filepath.Base(vlog)) ||
		!strings.Contains(rep.Problems[0], fmt.Sprintf("offset %d", end)) || len(rep.Repaired) != 0 {
		t.Fatalf("Check = %+v", rep)
	}
	wantOpenError(t, dir, badgerstore.ErrCorrupt) // Check changed nothing

	rep, err = badgerstore.Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repaired) != 1 || !strings.Contains(rep.Repaired[0], fmt.Sprintf("from offset %d", end)) || len(rep.Lost) != 0 || rep.Unrepairable {
		t.Fatalf("Repair = %+v, want one log cut and nothing lost", rep)
	}
	t.Logf("repair: %s", rep.Repaired[0])
	s := open(t, dir)
	for i := range 3 {
		r, err := s.GetRun(context.Background(), fmt.Sprintf("r%d", i))
		if err != nil || !bytes.Equal(r.Input, bigInput(i)) {
			t.Errorf("run r%d after repair: %v", i, err)
		}
	}
	_ = s.Close()
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Errorf("Check after repair: %+v %v", rep, err)
	}
}

func TestRepair_DamageInTheMiddleSaysWhatIsLost(t *testing.T) {
	dir := bigRuns(t, 3)
	vlog := glob1(t, filepath.Join(dir, "*.vlog"))
	garble(t, vlog, 5000) // inside the first run's value
	rep, err := badgerstore.Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	lost := strings.Join(rep.Lost, "\n")
	for i := range 3 {
		if !strings.Contains(lost, fmt.Sprintf(`run "r%d"`, i)) {
			t.Errorf("Lost does not name run r%d:\n%s", i, lost)
		}
	}
	t.Logf("lost:\n%s", lost)
	s := open(t, dir)
	if _, err := s.GetRun(context.Background(), "r0"); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("lost run r0 after repair: %v, want ErrNotFound", err)
	}
	if runs, err := s.UnfinishedRuns(context.Background()); err != nil || len(runs) != 0 {
		t.Errorf("unfinished runs after repair: %v %v", runs, err)
	}
}

func TestCheck_InUse(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := badgerstore.Check(dir); !errors.Is(err, badgerstore.ErrInUse) {
		t.Errorf("Check of an open store: %v", err)
	}
	_ = s.Close()
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Errorf("Check of a sound store: %+v %v", rep, err)
	}
}

// TestRepair_MemtableLogSaysWhatIsLost damages a memtable log in the
// middle: Repair cuts it there and names the node results logged after the
// damage, which it cannot keep.
func TestRepair_MemtableLogSaysWhatIsLost(t *testing.T) {
	live := t.TempDir()
	s := open(t, live)
	fill(t, s, 100)
	dir := crashCopy(t, live)
	_ = s.Close()
	mem := glob1(t, filepath.Join(dir, "*.mem"))
	garble(t, mem, 9000)
	rep, err := badgerstore.Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	lost := strings.Join(rep.Lost, "\n")
	t.Logf("%d records lost:\n%s", len(rep.Lost), lost)
	if !strings.Contains(lost, `result of node "n099" of run "r"`) || len(rep.Lost) < 10 {
		t.Fatalf("Lost does not name the results logged after the damage: %+v", rep)
	}
	s = open(t, dir)
	res, err := s.NodeResults(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rep.Lost {
		var node string
		if _, err := fmt.Sscanf(l, "result of node %q", &node); err == nil {
			if _, ok := res[node]; ok {
				t.Errorf("%s reported lost but stored", node)
			}
		}
	}
	if len(res) == 0 || len(res) == 100 {
		t.Errorf("%d results kept", len(res))
	}
}

// TestCheck_CrashImage: a store left by a crash (memtable not flushed,
// logs at full size) is sound, and Check reads it without changing it.
func TestCheck_CrashImage(t *testing.T) {
	live := t.TempDir()
	s := open(t, live)
	fill(t, s, 50)
	dir := crashCopy(t, live)
	_ = s.Close()
	rep, err := badgerstore.Check(dir)
	if err != nil || !rep.OK() {
		t.Fatalf("Check of a crash image: %+v %v", rep, err)
	}
	t.Logf("notes: %q", rep.Notes)
	s = open(t, dir)
	if res, err := s.NodeResults(context.Background(), "r"); err != nil || len(res) != 50 {
		t.Fatalf("after Check: %d results, %v", len(res), err)
	}
}
