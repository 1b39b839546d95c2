package workflow_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// loadTiny loads the tiny guest (echo, noop) as "tiny".
func (f *fixture) loadTiny(t testing.TB) {
	t.Helper()
	tiny, err := os.ReadFile("../testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.h.Load(context.Background(), "tiny", tiny, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
}

// fresh returns a fixture on f's host with a store of its own.
func (f *fixture) fresh() *fixture {
	return &fixture{h: f.h, store: memstore.New(), wasm: f.wasm}
}

// mapFlow echoes the run's input (a JSON array) and maps nodes.work over
// it, four items at a time.
const mapFlow = `
name: mapflow
policy: {retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}, breaker: {failure_threshold: -1}}
nodes:
  list: {plugin: tiny, function: echo}
  each:
    plugin: nodes
    function: work
    for_each: list
    max_concurrency: %d
    tolerate: %s
`

// items is a JSON array of n items; those in broken make nodes.work fail
// (an item shaped like a config wrapper carries its own config).
func items(n int, broken ...int) []byte {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strconv.Itoa(i)
	}
	for _, b := range broken {
		parts[b] = `{"config": {"broken": true}, "input": ` + strconv.Itoa(b) + `}`
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// checkMapOutput checks that out is the array of the n items' outputs in
// order (nodes.work names the item it ran as), with null at failed.
func checkMapOutput(t *testing.T, out []byte, n int, failed ...int) {
	t.Helper()
	var got []map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %.200s: %v", out, err)
	}
	if len(got) != n {
		t.Fatalf("output has %d items, want %d", len(got), n)
	}
	isFailed := map[int]bool{}
	for _, i := range failed {
		isFailed[i] = true
	}
	for i, o := range got {
		if isFailed[i] != (o == nil) {
			t.Fatalf("item %d: %v", i, o)
		}
		if o != nil && o["node"] != workflow.ItemName("each", i) {
			t.Fatalf("item %d is the output of %s", i, o["node"])
		}
	}
}

func testMapRunsEachItemOnceInOrder(t *testing.T, shared *fixture) {
	f := shared.fresh()
	e := f.engine(t, fmt.Sprintf(mapFlow, 4, "0"))
	ctx := context.Background()
	r, err := e.Submit(ctx, "mapflow", items(40), "")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	checkMapOutput(t, r.Output, 40)
	for i := range 40 {
		if got := f.execs(t, r.ID, workflow.ItemName("each", i)); len(got) != 1 {
			t.Fatalf("item %d ran %v", i, got)
		}
	}
	info, err := e.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := info.Nodes[1].Map
	if m == nil || m.Total != 40 || m.Done != 40 || len(m.Failed) != 0 {
		t.Fatalf("map info %+v", m)
	}
	// An empty array maps to an empty array.
	r, err = e.Submit(ctx, "mapflow", []byte(`[]`), "")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded || string(r.Output) != "[]" {
		t.Fatalf("empty: %s %s %s", r.Status, r.Error, r.Output)
	}
}

func testMapFailedItemPolicy(t *testing.T, shared *fixture) {
	tests := []struct {
		name, tolerate string
		wantOK         bool
	}{
		{"none tolerated", "0", false},
		{"two tolerated", "2", true},
		{"10 percent of 20", "10%", true},
		{"5 percent of 20", "5%", false},
	}
	// One engine runs a copy of the workflow per case.
	f := shared.fresh()
	var srcs []string
	for i, tt := range tests {
		srcs = append(srcs, strings.Replace(fmt.Sprintf(mapFlow, 3, tt.tolerate), "name: mapflow", "name: mapflow"+strconv.Itoa(i), 1))
	}
	e := f.engine(t, srcs...)
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.Submit(ctx, "mapflow"+strconv.Itoa(i), items(20, 4, 13), "")
			if err != nil {
				t.Fatal(err)
			}
			r = wait(t, e, r.ID)
			info, err := e.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := info.Nodes[1].Map
			if !tt.wantOK {
				if r.Status != statestore.StatusFailed || !strings.Contains(r.Error, "items failed (tolerated: "+tt.tolerate+")") {
					t.Fatalf("status %s: %s", r.Status, r.Error)
				}
				if info.Nodes[1].DeadLetter == "" {
					t.Fatal("no dead letter")
				}
				return
			}
			if r.Status != statestore.StatusSucceeded {
				t.Fatalf("status %s: %s", r.Status, r.Error)
			}
			checkMapOutput(t, r.Output, 20, 4, 13)
			if m.Done != 18 || len(m.Failed) != 2 || m.Failed[0].Item+m.Failed[1].Item != 17 {
				t.Fatalf("map info %+v", m)
			}
			// A failed item went through the policy: two attempts.
			if got := f.execs(t, r.ID, workflow.ItemName("each", 4)); len(got) != 2 {
				t.Fatalf("failed item ran %v", got)
			}
		})
	}
}

const (
	mapCrashDirEnv = "BULKHEAD_TEST_MAP_DIR"
	mapCrashItems  = 1000
)

// mapCrashEngine returns an engine over store with the nodes and tiny
// guests loaded and the map workflow registered.
func mapCrashEngine(t testing.TB, store statestore.Store, observe func(workflow.Event)) *workflow.Engine {
	t.Helper()
	f := &fixture{h: hosttest.New(t), store: store, wasm: hosttest.Fixture(t, "go/nodes/nodes.wasm")}
	if _, err := f.h.Load(context.Background(), "nodes", f.wasm, abi.Manifest{Pool: abi.Pool{Max: 16}}); err != nil {
		t.Fatal(err)
	}
	f.loadTiny(t)
	e, err := workflow.New(store, f.h, workflow.WithObserver(observe), workflow.WithWorkers(4))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("map.yaml", []byte(fmt.Sprintf(mapFlow, 16, "0")), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	return e
}

// TestMapCrashChild runs the map of TestEngine_MapKill9Resume until it is
// killed, printing the map's progress.
func TestMapCrashChild(t *testing.T) {
	dir := os.Getenv(mapCrashDirEnv)
	if dir == "" {
		t.Skip("run by TestEngine_MapKill9Resume")
	}
	s, err := badgerstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := mapCrashEngine(t, s, func(ev workflow.Event) {
		if ev.Kind == workflow.EventProgress {
			fmt.Printf("done %d\n", ev.Progress.Done)
		}
	})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(context.Background(), "mapflow", items(mapCrashItems), "crash"); err != nil {
		t.Fatal(err)
	}
	select {} // until SIGKILL
}

// journalCounter counts the journal writes of each node and item.
type journalCounter struct {
	statestore.Store
	mu     sync.Mutex
	writes map[string]int
}

func (s *journalCounter) CompleteNode(ctx context.Context, res statestore.NodeResult, next ...statestore.NodeAttempt) error {
	s.mu.Lock()
	s.writes[res.Node]++
	s.mu.Unlock()
	return s.Store.CompleteNode(ctx, res, next...)
}

// TestEngine_MapKill9Resume kills a process with SIGKILL in the middle of
// a 1,000-item map and resumes the run here: only the items not journaled
// before the kill run again, each item's completion is journaled once
// and the output has every item, in order.
func TestEngine_MapKill9Resume(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMapCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), mapCrashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var done int
		if _, err := fmt.Sscanf(sc.Text(), "done %d", &done); err == nil && done >= mapCrashItems/3 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the child ended before a third of the map was done")
	}

	ctx := context.Background()
	s, err := badgerstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before, err := s.NodeResults(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	// What each item had run before the kill.
	execsBefore := map[int]string{}
	doneBefore := map[int]bool{}
	for i := range mapCrashItems {
		name := workflow.ItemName("each", i)
		b, _ := s.StateGet(ctx, "nodes", "exec/crash/"+name)
		execsBefore[i] = string(b)
		if _, ok := before[name]; ok {
			doneBefore[i] = true
		}
	}
	if _, ok := before["each"]; ok || len(doneBefore) == 0 || len(doneBefore) == mapCrashItems {
		t.Fatalf("killed with %d items journaled (map journaled: %v)", len(doneBefore), ok)
	}
	t.Logf("killed with %d of %d items journaled", len(doneBefore), mapCrashItems)

	counted := &journalCounter{Store: s, writes: map[string]int{}}
	e2 := mapCrashEngine(t, counted, nil)
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer stop(t, e2)
	r := wait(t, e2, "crash")
	if r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	checkMapOutput(t, r.Output, mapCrashItems)
	after, err := s.NodeResults(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	for i := range mapCrashItems {
		name := workflow.ItemName("each", i)
		b, _ := s.StateGet(ctx, "nodes", "exec/crash/"+name)
		switch {
		case doneBefore[i] && string(b) != execsBefore[i]:
			t.Fatalf("item %d journaled before the kill ran again: %q then %q", i, execsBefore[i], b)
		case doneBefore[i] && counted.writes[name] != 0:
			t.Fatalf("item %d journaled before the kill was journaled again", i)
		case !doneBefore[i] && counted.writes[name] != 1:
			t.Fatalf("item %d: %d journal writes after the resume, want 1", i, counted.writes[name])
		case !doneBefore[i] && attempts(string(b)) != attempts(execsBefore[i])+1:
			t.Fatalf("item %d ran %q before the kill and %q in all: want one run after the resume", i, execsBefore[i], b)
		}
		if _, ok := after[name]; !ok {
			t.Fatalf("item %d not journaled", i)
		}
	}
	if e2.Conflicts() != 0 {
		t.Fatalf("%d completions refused as duplicates", e2.Conflicts())
	}
}

// attempts counts the runs in a nodes fixture's execution record.
func attempts(rec string) int {
	if rec == "" {
		return 0
	}
	return strings.Count(rec, ",") + 1
}

// testMapStopStartsNoNewItem: Stop does not wait for a map's
// remaining items: the items running finish, no other starts, and the
// next engine runs only the items not journaled.
func testMapStopStartsNoNewItem(t *testing.T, shared *fixture) {
	f := shared.fresh()
	src := strings.Replace(fmt.Sprintf(mapFlow, 2, "0"), "    function: work\n", "    function: work\n    config: {sleep_ms: 10}\n", 1)
	progressed := make(chan struct{}, 1)
	e, err := workflow.New(f.store, f.h, workflow.WithObserver(func(ev workflow.Event) {
		if ev.Kind == workflow.EventProgress && ev.Progress.Done >= 10 {
			select {
			case progressed <- struct{}{}:
			default:
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("m.yaml", []byte(src), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(ctx, "mapflow", items(100), "m"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-progressed:
	case <-time.After(60 * time.Second):
		t.Fatal("no progress")
	}
	start := time.Now()
	stop(t, e)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Stop took %s", d)
	}
	res, _ := f.store.NodeResults(ctx, "m")
	if _, done := res["each"]; done || len(res) > 90 {
		t.Fatalf("%d journal entries after Stop", len(res))
	}
	e2 := f.engine(t, src)
	if r := wait(t, e2, "m"); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	for i := range 100 {
		if got := f.execs(t, "m", workflow.ItemName("each", i)); len(got) != 1 {
			t.Fatalf("item %d ran %v", i, got)
		}
	}
}

// TestEngine_Maps and its subtests share one host (the guests take seconds to load under
// the race detector); each has its own store and engine.
func TestEngine_Maps(t *testing.T) {
	shared := newFixture(t)
	shared.loadTiny(t)
	t.Run("MapRunsEachItemOnceInOrder", func(t *testing.T) { testMapRunsEachItemOnceInOrder(t, shared) })
	t.Run("MapFailedItemPolicy", func(t *testing.T) { testMapFailedItemPolicy(t, shared) })
	t.Run("MapStopStartsNoNewItem", func(t *testing.T) { testMapStopStartsNoNewItem(t, shared) })
}
