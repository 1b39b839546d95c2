package fleet_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/fleet"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }

// beat is long enough that a loaded machine does not make a live host
// miss three.
const beat = 200 * time.Millisecond

func openStore(t *testing.T, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func start(t *testing.T, s fleet.Store, h *host.Host, id string) *fleet.Member {
	t.Helper()
	m, err := fleet.New(s, h, fleet.Config{ID: id, Version: "test", Heartbeat: beat,
		Address: func() string { return id + ".example:7070" }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveHosts lists the IDs of the live hosts, and what each serves.
func liveHosts(t *testing.T, s fleet.Store) map[string][]statestore.HostPlugin {
	t.Helper()
	hs, err := s.ListHosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]statestore.HostPlugin{}
	for _, h := range hs {
		if h.Live() {
			out[h.ID] = h.Plugins
		}
	}
	return out
}

func tiny(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMember_Membership: two hosts on one database list each other; one
// stopped cleanly leaves the list, one that stops beating (its database
// connections gone) goes stale after the missed heartbeats.
func TestMember_Membership(t *testing.T) {
	url := pgtest.URL(t)
	sa, sb, sc := openStore(t, url), openStore(t, url), openStore(t, url)
	a := start(t, sa, hosttest.New(t), "a")
	b := start(t, sb, hosttest.New(t), "b")
	start(t, sc, hosttest.New(t), "c")
	waitFor(t, "a, b and c live", func() bool { return len(liveHosts(t, sa)) == 3 })
	hs, _ := a.Hosts(context.Background())
	if hs[1].ID != "b" || hs[1].Address != "b.example:7070" || hs[1].Version != "test" || hs[1].Heartbeat != beat {
		t.Errorf("host b listed as %+v", hs[1])
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hs, err := sa.ListHosts(context.Background()); err != nil || len(hs) != 2 || hs[0].ID != "a" || hs[1].ID != "c" {
		t.Errorf("after b stopped: %+v, %v; want a and c", hs, err)
	}
	// c loses its database: it stays listed, stale.
	killed := time.Now()
	_ = sc.Close()
	waitFor(t, "c stale", func() bool { _, ok := liveHosts(t, sa)["c"]; return !ok })
	// Its last heartbeat was at most one interval before, or later when
	// the machine is loaded.
	if el := time.Since(killed); el > statestore.MissedHeartbeats*beat+5*time.Second {
		t.Errorf("c stale %v after it lost the database; want about %d × %v", el, statestore.MissedHeartbeats, beat)
	}
	hs, _ = a.Hosts(context.Background())
	if len(hs) != 2 || hs[1].ID != "c" || hs[1].Live() || hs[1].Age < statestore.MissedHeartbeats*beat {
		t.Errorf("hosts = %+v, want a and c stale", hs)
	}
}

const twoEchoes = `name: two
policy: {retry: {max_attempts: 1}}
nodes:
  s0: {plugin: tiny, function: echo}
  s1: {plugin: tiny, function: echo, needs: [s0]}
`

// pendingRun stores a run of twoEchoes pinned to version, as a host that
// submitted it and died leaves it.
func pendingRun(t *testing.T, s statestore.Store, id, version string) {
	t.Helper()
	_, _, err := s.CreateRun(context.Background(), statestore.Run{ID: id, Workflow: "two", Input: []byte("hello"),
		Status: statestore.StatusRunning, Versions: map[string]string{"s0": version, "s1": version},
		Attrs: map[string]string{workflow.AttrSource: twoEchoes}})
	if err != nil {
		t.Fatal(err)
	}
}

// engineOn starts a workflow engine over s on h through m: it resumes the
// store's unfinished runs.
func engineOn(t *testing.T, s statestore.Store, m *fleet.Member, h *host.Host) *workflow.Engine {
	t.Helper()
	e, err := workflow.New(s, m.Invoker(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

// TestMember_RunsAVersionFromTheStore: host A loads v1 and records it;
// host B, which has no plugin file, runs a run pinned to v1 by fetching it
// from the store, and then lists v1 among what it serves.
func TestMember_RunsAVersionFromTheStore(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	sa, sb := openStore(t, url), openStore(t, url)
	ha, wasm := hosttest.New(t), tiny(t)
	man := abi.Manifest{Timeout: abi.Duration(5 * time.Second), Pool: abi.Pool{Max: 3}}
	v1, err := ha.Load(ctx, "tiny", wasm, man)
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, sa, ha, "a")
	a.Record("tiny", v1, wasm, man)
	waitFor(t, "a's module stored and listed", func() bool {
		ps := liveHosts(t, sb)["a"]
		return a.Pending() == 0 && len(ps) == 1 && ps[0] == statestore.HostPlugin{Plugin: "tiny", Version: v1}
	})
	pendingRun(t, sa, "r1", v1)

	hb := hosttest.New(t)
	b := start(t, sb, hb, "b")
	e := engineOn(t, sb, b, hb)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := e.Wait(wctx, "r1")
	if err != nil || r.Status != statestore.StatusSucceeded || string(r.Output) != "hello" {
		t.Fatalf("run r1 on b: %s %q %q, %v; want succeeded with hello", r.Status, r.Output, r.Error, err)
	}
	res, _ := sb.NodeResults(ctx, "r1")
	for _, n := range []string{"s0", "s1"} {
		if res[n].PluginVersion != v1 {
			t.Errorf("node %s ran %q, want %s", n, res[n].PluginVersion, v1)
		}
	}
	if !hb.HasVersion("tiny", v1) {
		t.Error("b does not hold v1")
	}
	if _, ok := hb.Plugin("tiny"); ok {
		t.Error("fetching a pinned version made it b's current version")
	}
	info := hb.Versions()
	if len(info) != 1 || !info[0].Pinned {
		t.Errorf("b's versions: %+v", info)
	}
	waitFor(t, "b listed as serving v1", func() bool {
		ps := liveHosts(t, sa)["b"]
		return len(ps) == 1 && ps[0].Version == v1
	})
}

// TestMember_RefusesTamperedModule: bytes changed in the database are not
// compiled: the run fails with an error that says so.
func TestMember_RefusesTamperedModule(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	s := openStore(t, url)
	wasm := tiny(t)
	v1, err := s.PutModule(ctx, statestore.Module{Plugin: "tiny", Wasm: wasm, Manifest: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	evil := append(append([]byte(nil), wasm...), 0, 2, 1, 'x')
	if _, err := conn.Exec(ctx, "UPDATE modules SET wasm = $1 WHERE sha256 = $2", evil, v1); err != nil {
		t.Fatal(err)
	}
	pendingRun(t, s, "r1", v1)
	h := hosttest.New(t)
	m := start(t, s, h, "b")
	e := engineOn(t, s, m, h)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := e.Wait(wctx, "r1")
	if err != nil || r.Status != statestore.StatusFailed {
		t.Fatalf("run on tampered bytes: %s, %v; want failed", r.Status, err)
	}
	if !strings.Contains(r.Error, "module from the store refused") || !strings.Contains(r.Error, statestore.HashInput(evil)) {
		t.Errorf("run error %q does not say the module was refused and why", r.Error)
	}
	if h.HasVersion("tiny", v1) {
		t.Error("tampered bytes were loaded")
	}
	// A direct call gets the sentinel.
	_, err = m.Invoker(h).Invoke(ctx, host.InvokeRequest{Plugin: "tiny", Function: "echo", Version: v1})
	if !errors.Is(err, statestore.ErrModuleHash) {
		t.Errorf("pinned call on tampered bytes: %v, want ErrModuleHash", err)
	}
	// A version no host stored is not found.
	_, err = m.Invoker(h).Invoke(ctx, host.InvokeRequest{Plugin: "tiny", Function: "echo", Version: statestore.HashInput([]byte("x"))})
	if !errors.Is(err, host.ErrNoPlugin) || !strings.Contains(err.Error(), "no host stored it") {
		t.Errorf("pinned call to an unknown version: %v", err)
	}
}
