package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

func (s *hostStore) ClaimExpiredTasks(ctx context.Context, owner string, max int, d time.Duration) ([]statestore.Task, error) {
	if s.dead.Load() || s.paused.Load() {
		return nil, errDead
	}
	return s.Store.ClaimExpiredTasks(ctx, owner, max, d)
}

// longChainFlow is 30 nodes of about 100 ms each, one after the other: the
// worker that runs its first node keeps the chain.
var longChainFlow = func() string {
	var b strings.Builder
	b.WriteString("name: chain\nnodes:\n  c0: {plugin: nodes, function: work, config: {sleep_ms: 100}}\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&b, "  c%d: {plugin: nodes, function: work, needs: [c%d], config: {sleep_ms: 100}}\n", i, i-1)
	}
	return b.String()
}()

// busyNode is one node that runs for about 3 s.
const busyNode = `
name: busy
nodes:
  b:
    plugin: nodes
    function: long
    config: {steps: 60, step_ms: 50, every: 10}
`

// startedAt records when each node started on one engine.
type startedAt struct {
	mu sync.Mutex
	at map[string]time.Time // run/node
}

func (s *startedAt) observe(ev workflow.Event) {
	if ev.Kind != workflow.EventNodeStarted {
		return
	}
	s.mu.Lock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if _, ok := s.at[ev.RunID+"/"+ev.Node]; !ok {
		s.at[ev.RunID+"/"+ev.Node] = ev.Time
	}
	s.mu.Unlock()
}

func (s *startedAt) get(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.at[key]
	return at, ok
}

// waitStarted waits until every node in keys started.
func (s *startedAt) waitStarted(t *testing.T, within time.Duration, keys ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, k := range keys {
		for {
			if _, ok := s.get(k); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start within %s", k, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A host whose workers are all busy rescues a dead host's nodes within
// lease + 1 s of the death: workers busy on chains of short nodes hand
// the chain back at the next node to take the rescued ones (no rescue
// slots), and rescue slots start them at once when every worker runs one
// long node; a node left without a slot starts beyond the slots once it
// waited. On memstore and on PostgreSQL, whose leases run on the
// database's clock.
func TestCluster_BusyHostRescuesWithinLease(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T, f *fixture) (a, b statestore.Store)
	}{
		{"memstore", func(t *testing.T, f *fixture) (statestore.Store, statestore.Store) { return f.store, f.store }},
		{"pgstore", func(t *testing.T, f *fixture) (statestore.Store, statestore.Store) {
			url := pgtest.URL(t)
			open := func() statestore.Store {
				s, err := pgstore.Open(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			return open(), open()
		}},
	}
	busy := []struct {
		name  string
		flow  string // what keeps host b's workers busy
		slots int    // host b's rescue slots
	}{
		{"ChainsHandedBack", longChainFlow, 0},
		{"LongNodesRescueSlots", busyNode, 2},
		// One node on the slot, the other beyond it once it waited.
		{"LongNodesBeyondSlots", busyNode, 1},
	}
	for _, st := range stores {
		for _, bz := range busy {
			t.Run(st.name+"/"+bz.name, func(t *testing.T) {
				f := newFixture(t)
				sa, sb := st.open(t, f)
				testBusyRescue(t, f, sa, sb, bz.flow, bz.slots)
			})
		}
	}
}

func testBusyRescue(t *testing.T, f *fixture, sa, sb statestore.Store, busyFlow string, slots int) {
	ctx := context.Background()
	// Each engine has a host of its own, as separate processes do: host
	// a's calls fail once it is dead (its checkpoints are refused), and
	// a shared breaker would count them against host b's rescues.
	hostB := hosttest.New(t)
	if _, err := hostB.Load(ctx, "nodes", f.wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	newEngine := func(owner string, view statestore.Store, observe func(workflow.Event), opts ...workflow.Option) *workflow.Engine {
		h := f.h
		if owner == "host-b" {
			h = hostB
		}
		return startRescuer(t, h, view, owner, observe, []string{longNode, busyFlow},
			append([]workflow.Option{workflow.WithWorkers(2)}, opts...)...)
	}
	// A chain's first node takes longest (its worker's first call of the
	// plugin): host b is busy with short nodes once the third started.
	busyName, busyNodeName := "chain", "c2"
	if busyFlow == busyNode {
		busyName, busyNodeName = "busy", "b"
	}

	// Host b's two workers are busy for about 3 s.
	var onA, onB startedAt
	b := newEngine("host-b", sb, onB.observe, workflow.WithRescueSlots(slots))
	var work []string
	for i := range 2 {
		r, err := b.Submit(ctx, busyName, []byte(`"x"`), fmt.Sprintf("busy-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		work = append(work, r.ID)
	}
	onB.waitStarted(t, 30*time.Second, work[0]+"/"+busyNodeName, work[1]+"/"+busyNodeName)

	// Host a claims two long nodes (host b claims nothing more) and dies.
	viewA := &hostStore{Store: sa}
	a := newEngine("host-a", viewA, onA.observe)
	var doomed []string
	for i := range 2 {
		r, err := a.Submit(ctx, "long", []byte(`"x"`), fmt.Sprintf("doomed-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		doomed = append(doomed, r.ID)
	}
	onA.waitStarted(t, 30*time.Second, doomed[0]+"/a", doomed[1]+"/a")
	killed := time.Now()
	viewA.dead.Store(true)
	bound := clusterLease + time.Second
	onB.waitStarted(t, 30*time.Second, doomed[0]+"/a", doomed[1]+"/a")
	for _, id := range doomed {
		at, _ := onB.get(id + "/a")
		d := at.Sub(killed)
		t.Logf("%s/a started on host b %s after host a died", id, d.Round(time.Millisecond))
		if d > bound {
			t.Errorf("%s/a started on host b %s after host a died, want within lease (%s) + 1s", id, d.Round(time.Millisecond), clusterLease)
		}
	}
	if st := b.Stats(); st.Rescues < 2 {
		t.Errorf("host b stats %+v, want at least two rescues", st)
	}
	for _, id := range append(doomed, work...) {
		if got := wait(t, b, id); got.Status != statestore.StatusSucceeded {
			t.Fatalf("run %s: %s %s", id, got.Status, got.Error)
		}
	}
	for _, id := range doomed {
		res, err := sb.NodeResults(ctx, id)
		if err != nil || len(res) != 1 {
			t.Fatalf("journal of %s: %v, %v; want one entry", id, res, err)
		}
	}
}

// startRescuer starts an engine named owner over view and h with a lease
// of clusterLease, a 20 ms poll (unless opts say otherwise) and the
// workflows of flows; the test stops it.
func startRescuer(t *testing.T, h workflow.Invoker, view statestore.Store, owner string, observe func(workflow.Event), flows []string, opts ...workflow.Option) *workflow.Engine {
	t.Helper()
	opts = append([]workflow.Option{workflow.WithOwner(owner), workflow.WithLease(clusterLease),
		workflow.WithPollInterval(20 * time.Millisecond), workflow.WithObserver(observe)}, opts...)
	e, err := workflow.New(view, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range flows {
		w, err := workflow.Parse("flow.yaml", []byte(src), workflow.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, e) })
	return e
}

// napNode is one node that sleeps for 900 ms.
const napNode = `
name: nap
nodes:
  z: {plugin: nodes, function: work, config: {sleep_ms: 900}}
`

// A host that cannot start a dead host's node now (its only worker runs a
// 3 s node, it has no rescue slot) does not claim it: the node waits in
// the store, and the host whose worker frees first, shortly after the
// lease ended, claims and starts it, within lease + 1 s of the death. A
// node claimed into the busy host's pending queue would start only when
// its worker is done, about 2.5 s after the death.
func TestCluster_BusyHostLeavesRescueToAFreeHost(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// Host a has its own plugin host: its calls fail once it is dead.
	other := hosttest.New(t)
	if _, err := other.Load(ctx, "nodes", f.wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	flows := []string{longNode, busyNode, napNode}
	var onA, onB, onC startedAt
	b := startRescuer(t, other, f.store, "host-b", onB.observe, flows, workflow.WithWorkers(1), workflow.WithRescueSlots(0))
	busy, err := b.Submit(ctx, "busy", []byte(`"x"`), "busy")
	if err != nil {
		t.Fatal(err)
	}
	onB.waitStarted(t, 30*time.Second, busy.ID+"/b")

	viewA := &hostStore{Store: f.store}
	a := startRescuer(t, f.h, viewA, "host-a", onA.observe, flows, workflow.WithWorkers(1))
	doomed, err := a.Submit(ctx, "long", []byte(`"x"`), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	onA.waitStarted(t, 30*time.Second, doomed.ID+"/a")

	// Host c's only worker frees 900 ms from now; its rescuer does not
	// tick meanwhile (5 s poll): its claim for the freed worker rescues.
	c := startRescuer(t, other, f.store, "host-c", onC.observe, flows, workflow.WithWorkers(1),
		workflow.WithRescueSlots(0), workflow.WithPollInterval(5*time.Second))
	nap, err := c.Submit(ctx, "nap", []byte(`"x"`), "nap")
	if err != nil {
		t.Fatal(err)
	}
	onC.waitStarted(t, 30*time.Second, nap.ID+"/z")
	killed := time.Now()
	viewA.dead.Store(true)

	key := doomed.ID + "/a"
	deadline := time.Now().Add(30 * time.Second)
	for {
		atB, onHostB := onB.get(key)
		atC, onHostC := onC.get(key)
		if onHostB {
			t.Fatalf("the doomed node started on host b, whose worker was busy, %s after host a died", atB.Sub(killed).Round(time.Millisecond))
		}
		if onHostC {
			d := atC.Sub(killed)
			t.Logf("the doomed node started on host c %s after host a died", d.Round(time.Millisecond))
			if d > clusterLease+time.Second {
				t.Errorf("the doomed node started %s after host a died, want within lease (%s) + 1s", d.Round(time.Millisecond), clusterLease)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the doomed node did not start again within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, r := range []struct {
		e  *workflow.Engine
		id string
	}{{b, busy.ID}, {c, nap.ID}, {c, doomed.ID}} {
		if got := wait(t, r.e, r.id); got.Status != statestore.StatusSucceeded {
			t.Fatalf("run %s: %s %s", r.id, got.Status, got.Error)
		}
	}
	if st := b.Stats(); st.Rescues != 0 {
		t.Errorf("host b stats %+v, want no rescue", st)
	}
}

// An engine that starts under the name of one that died takes back the
// nodes it held at once, long before their leases end, and journals them
// once.
func TestCluster_RestartTakesBackItsNodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const lease = 10 * time.Second
	viewA := &hostStore{Store: f.store}
	var onA, onRestart startedAt
	a := startRescuer(t, f.h, viewA, "host-a", onA.observe, []string{longNode}, workflow.WithLease(lease))
	var doomed []string
	for i := range 2 {
		r, err := a.Submit(ctx, "long", []byte(`"x"`), fmt.Sprintf("doomed-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		doomed = append(doomed, r.ID+"/a")
	}
	onA.waitStarted(t, 30*time.Second, doomed...)
	killed := time.Now()
	viewA.dead.Store(true)

	// Its restart has a plugin host of its own, as a new process has.
	h := hosttest.New(t)
	if _, err := h.Load(ctx, "nodes", f.wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	restart := startRescuer(t, h, f.store, "host-a", onRestart.observe, []string{longNode}, workflow.WithLease(lease),
		workflow.WithWorkers(1), workflow.WithRescueSlots(1))
	onRestart.waitStarted(t, 30*time.Second, doomed...)
	for _, key := range doomed {
		at, _ := onRestart.get(key)
		if d := at.Sub(killed); d > 5*time.Second {
			t.Errorf("%s started on the restart %s after the death, want at once (lease %s)", key, d.Round(time.Millisecond), lease)
		}
	}
	if st := restart.Stats(); st.Rescues != 2 {
		t.Errorf("restart stats %+v, want two rescues", st)
	}
	for _, key := range doomed {
		id, _, _ := strings.Cut(key, "/")
		if got := wait(t, restart, id); got.Status != statestore.StatusSucceeded {
			t.Fatalf("run %s: %s %s", id, got.Status, got.Error)
		}
		if res, err := f.store.NodeResults(ctx, id); err != nil || len(res) != 1 {
			t.Fatalf("journal of %s: %v, %v; want one entry", id, res, err)
		}
	}
}

func TestNew_NegativeRescueSlots(t *testing.T) {
	if _, err := workflow.New(memstore.New(), nil, workflow.WithRescueSlots(-1)); err == nil {
		t.Fatal("New accepted -1 rescue slots")
	}
}
