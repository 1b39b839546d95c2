package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// echoPlugins answers every call with its input, and fails inputs that
// are the JSON string "bad".
type echoPlugins struct{}

func (echoPlugins) Invoke(_ context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	if string(req.Input) == `"bad"` {
		return host.InvokeResult{Attempts: 1}, errors.New("echo: bad item")
	}
	return host.InvokeResult{Output: req.Input, Attempts: 1, Version: "v1"}, nil
}
func (echoPlugins) Plugin(string) (host.PluginInfo, bool) {
	return host.PluginInfo{Version: "v1"}, true
}

// clock is a clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// serveEngine starts e with the workflow sources and serves it; it
// returns a client and the server's URL.
func serveEngine(t *testing.T, e *workflow.Engine, sources ...string) (*api.Client, string) {
	t.Helper()
	ctx := context.Background()
	for _, src := range sources {
		w, err := workflow.Parse("flow.yaml", []byte(src), workflow.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(ctx) })
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: hosttest.New(t), Workflows: e})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c, srv.URL
}

// getRaw returns the body of an authenticated GET.
func getRaw(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

// GET /v1/schedules lists each scheduled workflow with its policies, the
// due time it fired last, that run, and the next due time.
func TestAPI_Schedules(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 1, 1, 2, 59, 58, 0, time.UTC)}
	e, err := workflow.New(memstore.New(), echoPlugins{}, workflow.WithClock(clk.Now), workflow.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, url := serveEngine(t, e,
		"name: nightly\nschedule: {cron: \"0 3 * * *\", overlap: queue, catch_up: all}\nnodes:\n  go: {until: \"2000-01-01T00:00:00Z\"}\n",
		"name: plain\nnodes:\n  a: {plugin: echo}\n")
	// The schedule's first pass records it; its first due time is 03:00.
	waitFor(t, "the schedule's record", func() bool {
		ss, err := c.Schedules(ctx)
		return err == nil && len(ss) == 1 && !ss[0].Last.IsZero()
	})
	clk.Set(time.Date(2026, 1, 1, 3, 0, 1, 0, time.UTC))
	const run = "sched-nightly-20260101T030000Z"
	waitFor(t, "the scheduled run", func() bool {
		ss, err := c.Schedules(ctx)
		return err == nil && len(ss) == 1 && ss[0].LastRun == run
	})
	ss, err := c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := workflow.ScheduleInfo{Workflow: "nightly", Cron: "0 3 * * *", Overlap: "queue", CatchUp: "all",
		Last: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), LastRun: run, Next: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}
	if got := ss[0]; got.Workflow != want.Workflow || got.Cron != want.Cron || got.Overlap != want.Overlap || got.CatchUp != want.CatchUp ||
		!got.Last.Equal(want.Last) || got.LastRun != want.LastRun || !got.Next.Equal(want.Next) {
		t.Errorf("schedule %+v, want %+v", got, want)
	}
	// The wire names are the documented ones.
	body := getRaw(t, url+"/v1/schedules")
	for _, k := range []string{`"workflow":"nightly"`, `"cron":"0 3 * * *"`, `"overlap":"queue"`, `"catch_up":"all"`,
		`"last":"2026-01-01T03:00:00Z"`, `"last_run":"` + run + `"`, `"next":"2026-01-02T03:00:00Z"`} {
		if !strings.Contains(body, k) {
			t.Errorf("GET /v1/schedules: no %s in %s", k, body)
		}
	}
}

// Without a workflow engine, GET /v1/schedules is unavailable; with an
// engine but no schedule, the list is empty (not null).
func TestAPI_SchedulesEmpty(t *testing.T) {
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: hosttest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	var ae *api.Error
	if _, err := c.Schedules(context.Background()); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("without an engine: %v, want 503", err)
	}
	e, err := workflow.New(memstore.New(), echoPlugins{})
	if err != nil {
		t.Fatal(err)
	}
	_, url := serveEngine(t, e, "name: plain\nnodes:\n  a: {plugin: echo}\n")
	if body := getRaw(t, url+"/v1/schedules"); strings.TrimSpace(body) != `{"schedules":[]}` {
		t.Errorf("no schedule: %s", body)
	}
}

// GET /v1/runs/{id} shows what each node of a run is at: a map's items
// done of the total and its failed items, a skipped node, a sleeping
// timer with its due time, and an event node with the event it waits for
// and when it times out.
func TestAPI_RunShowsMapSkipTimerEvent(t *testing.T) {
	ctx := context.Background()
	e, err := workflow.New(memstore.New(), echoPlugins{}, workflow.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, url := serveEngine(t, e, `name: show
policy: {retry: {max_attempts: 1}}
nodes:
  list: {plugin: echo}
  each: {plugin: echo, for_each: list, tolerate: 1}
  big: {plugin: echo, needs: [list], when: 'len(list) > 10'}
  nap: {sleep: 1h, needs: [each]}
  approval: {wait_for: approval, timeout: 2h, default: '{"ok": false}', needs: [each]}
  done: {plugin: echo, needs: [big, nap, approval]}
`)
	if _, err := e.Submit(ctx, "show", []byte(`[1, "bad", 3]`), "r1"); err != nil {
		t.Fatal(err)
	}
	var info workflow.RunInfo
	waitFor(t, "the timer and the event node waiting", func() bool {
		info, err = c.Run(ctx, "r1")
		n := 0
		for _, nd := range info.Nodes {
			if nd.Status == workflow.NodeWaiting {
				n++
			}
		}
		return err == nil && n == 2
	})
	nodes := map[string]workflow.NodeInfo{}
	for _, n := range info.Nodes {
		nodes[n.Name] = n
	}
	for name, kind := range map[string]string{"list": workflow.KindPlugin, "each": workflow.KindMap, "big": workflow.KindPlugin,
		"nap": workflow.KindTimer, "approval": workflow.KindEvent} {
		if nodes[name].Kind != kind {
			t.Errorf("node %s: kind %q, want %q", name, nodes[name].Kind, kind)
		}
	}
	each := nodes["each"]
	if each.Status != workflow.NodeSucceeded || each.Map == nil || each.Map.Total != 3 || each.Map.Done != 2 ||
		len(each.Map.Failed) != 1 || each.Map.Failed[0].Item != 1 || !strings.Contains(each.Map.Failed[0].Error, "bad item") {
		t.Errorf("map node: %s %+v", each.Status, each.Map)
	}
	if big := nodes["big"]; big.Status != workflow.NodeSkipped || big.When != "len(list) > 10" {
		t.Errorf("conditional node: %s when %q, want skipped", big.Status, big.When)
	}
	ready := each.FinishedAt
	if nap := nodes["nap"]; nap.Awaits != "" || !nap.DueAt.Equal(ready.Add(time.Hour)) || nap.Plugin != "" {
		t.Errorf("timer node: %+v, want due at %s", nap, ready.Add(time.Hour))
	}
	if ap := nodes["approval"]; ap.Awaits != "approval" || !ap.DueAt.Equal(ready.Add(2*time.Hour)) {
		t.Errorf("event node: %+v, want awaiting approval until %s", ap, ready.Add(2*time.Hour))
	}
	// The wire names are the documented ones.
	body := getRaw(t, url+"/v1/runs/r1")
	for _, k := range []string{`"map":{"total":3,"done":2,"failed":[{"item":1,`, `"status":"skipped"`, `"status":"waiting"`,
		`"awaits":"approval"`, `"due_at":"`, `"kind":"map"`, `"kind":"timer"`, `"kind":"event"`} {
		if !strings.Contains(body, k) {
			t.Errorf("GET /v1/runs/r1: no %s in %s", k, body)
		}
	}
}
