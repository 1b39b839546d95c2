package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "t0ken"

// noToken given as Config.Token makes newFixture serve without a token.
const noToken = "\x00none"

type fixture struct {
	h   *host.Host
	a   *api.API
	srv *httptest.Server
	wf  *fakeWorkflows
	c   *api.Client
}

// newFixture serves an API over a host with the tiny plugin loaded, and
// with outcomes (testdata/outcomes.wat) too when asked.
func newFixture(t testing.TB, cfg api.Config, outcomes bool) *fixture {
	t.Helper()
	h := hosttest.New(t)
	ctx := context.Background()
	if _, err := h.Load(ctx, "tiny", hosttest.Fixture(t, "../host/testdata/tiny.wasm"), abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	if outcomes {
		m := abi.Manifest{Timeout: abi.Duration(250 * time.Millisecond), Pool: abi.Pool{Max: 2}}
		if _, err := h.Load(ctx, "outcomes", hosttest.Fixture(t, "outcomes.wasm"), m); err != nil {
			t.Fatal(err)
		}
	}
	wf := newFakeWorkflows()
	mon := resilience.NewMonitor()
	mon.Register("tiny", h.PluginCheck("tiny"), time.Hour)
	mon.CheckNow(ctx)
	f := &fixture{h: h, wf: wf}
	metrics := api.NewMetrics(api.Sources{Host: h, Monitor: mon,
		DeadLetters: func(context.Context) (int, error) { return 0, nil }})
	wf.observe = metrics.Observe
	cfg.Dashboard = true
	switch cfg.Token {
	case "":
		cfg.Token = token
	case noToken:
		cfg.Token = ""
	}
	a, err := api.New(cfg, api.Deps{Host: h, Workflows: wf, Monitor: mon, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	f.srv = httptest.NewServer(a)
	t.Cleanup(f.srv.Close)
	f.c, err = api.NewClient(f.srv.URL, cfg.Token, f.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do sends a request with the token and returns status and body.
func (f *fixture) do(t *testing.T, method, path string, body io.Reader, tok string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func errCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error: %s", b)
	}
	return e.Error.Code
}

// fakeWorkflows is an in-memory engine: runs finish at once with their
// input as output, reported to observe like the engine's own.
type fakeWorkflows struct {
	store   statestore.Store
	observe func(workflow.Event)
}

func newFakeWorkflows() *fakeWorkflows { return &fakeWorkflows{store: memstore.New()} }

func (w *fakeWorkflows) Workflows() []*workflow.Workflow {
	return []*workflow.Workflow{{Name: "echo", File: "echo.yaml", Order: []string{"echo"}, Output: "echo"}}
}
func (w *fakeWorkflows) Submit(ctx context.Context, wf string, input []byte, runID string) (statestore.Run, error) {
	if wf != "echo" {
		return statestore.Run{}, api.Errorf(404, api.CodeNotFound, "no workflow %q", wf)
	}
	if runID == "" {
		runID = time.Now().Format("150405.000000000")
	}
	r, created, err := w.store.CreateRun(ctx, statestore.Run{ID: runID, Workflow: wf, Input: input})
	if err != nil || !created {
		return r, err
	}
	r, err = w.store.UpdateRun(ctx, runID, func(r *statestore.Run) error {
		r.Status, r.Output = statestore.StatusSucceeded, r.Input
		return nil
	})
	if err == nil && w.observe != nil {
		w.observe(workflow.Event{Kind: workflow.EventRunFinished, RunID: runID, Workflow: wf, Status: r.Status})
	}
	return r, err
}
func (w *fakeWorkflows) List(ctx context.Context, f statestore.RunFilter) ([]statestore.Run, string, error) {
	return w.store.ListRuns(ctx, f)
}
func (w *fakeWorkflows) Get(ctx context.Context, id string) (workflow.RunInfo, error) {
	r, err := w.store.GetRun(ctx, id)
	if err != nil {
		return workflow.RunInfo{}, err
	}
	n := workflow.NodeInfo{Name: "echo", Plugin: "tiny", Function: "run", Status: workflow.NodePending}
	if r.Status == statestore.StatusSucceeded {
		n.Status, n.Attempts, n.Version, n.Output, n.FinishedAt = workflow.NodeSucceeded, 1, "v1", r.Output, r.UpdatedAt
	}
	return workflow.RunInfo{Run: r, Nodes: []workflow.NodeInfo{n}}, nil
}
func (w *fakeWorkflows) Cancel(ctx context.Context, id string) (statestore.Run, error) {
	return statestore.Run{}, api.Errorf(409, api.CodeConflict, "run %s already finished", id)
}
func (w *fakeWorkflows) Resume(ctx context.Context, id string, _ bool) (statestore.Run, error) {
	return w.store.GetRun(ctx, id)
}
func (w *fakeWorkflows) Checkpoints(ctx context.Context, id, node string) ([]statestore.Checkpoint, error) {
	return w.store.ListCheckpoints(ctx, id, node)
}
func (w *fakeWorkflows) DeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error) {
	return w.store.ListDeadLetters(ctx, f)
}
func (w *fakeWorkflows) DeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	return w.store.GetDeadLetter(ctx, id)
}
func (w *fakeWorkflows) DeleteDeadLetter(ctx context.Context, id string) error {
	return w.store.DeleteDeadLetter(ctx, id)
}
func (w *fakeWorkflows) Replay(ctx context.Context, id string, _ bool) (statestore.Run, error) {
	d, err := w.store.GetDeadLetter(ctx, id)
	if err != nil {
		return statestore.Run{}, err
	}
	return w.store.GetRun(ctx, d.RunID)
}
func TestOpenAPI_DocumentsEveryRoute(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range f.a.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("openapi.json documents %s, which is not served", k)
		}
	}
	// Served, behind the token.
	if code, _, _ := f.do(t, "GET", "/v1/openapi.json", nil, ""); code != 401 {
		t.Errorf("openapi without token: %d", code)
	}
	code, b, _ := f.do(t, "GET", "/v1/openapi.json", nil, token)
	if code != 200 || !bytes.Equal(b, api.OpenAPI()) {
		t.Errorf("openapi: %d", code)
	}
}

func TestAPI_Auth(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
		code, b, h := f.do(t, "GET", "/v1/plugins", nil, tok)
		if code != http.StatusUnauthorized || errCode(t, b) != api.CodeUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("token %q: %d %s", tok, code, b)
		}
	}
	if code, b, _ := f.do(t, "GET", "/v1/plugins", nil, token); code != 200 || !strings.Contains(string(b), `"tiny"`) {
		t.Errorf("with token: %d %s", code, b)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/breakers", nil)
	req.Header.Set("Authorization", "bearer "+token) // the scheme is case-insensitive
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case scheme: %v", resp.Status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		if code, _, _ := f.do(t, "GET", p, nil, ""); code != 200 {
			t.Errorf("%s without token: %d", p, code)
		}
	}
}

func TestAPI_BodyLimit(t *testing.T) {
	f := newFixture(t, api.Config{MaxBody: 1024, MaxRunInput: 100}, false)
	big := bytes.Repeat([]byte("x"), 2048)
	code, b, _ := f.do(t, "POST", "/v1/plugins/tiny/call?function=echo", bytes.NewReader(big), token)
	if code != http.StatusRequestEntityTooLarge || errCode(t, b) != api.CodeBodyTooLarge {
		t.Errorf("with length: %d %s", code, b)
	}
	// Chunked, so the length is unknown until read.
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/plugins/tiny/call?function=echo", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || errCode(t, b) != api.CodeBodyTooLarge {
		t.Errorf("chunked: %d %s", resp.StatusCode, b)
	}
	in := `{"input":"` + strings.Repeat("y", 200) + `"}`
	code, b, _ = f.do(t, "POST", "/v1/workflows/echo/runs", strings.NewReader(in), token)
	if code != http.StatusRequestEntityTooLarge || errCode(t, b) != api.CodeBodyTooLarge {
		t.Errorf("run input: %d %s", code, b)
	}
}

func TestAPI_RoutingErrors(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	code, b, _ := f.do(t, "GET", "/v1/nope", nil, token)
	if code != 404 || errCode(t, b) != api.CodeNotFound {
		t.Errorf("unknown route: %d %s", code, b)
	}
	code, b, h := f.do(t, "DELETE", "/v1/plugins", nil, token)
	if code != 405 || errCode(t, b) != api.CodeMethodNotAllowed || !strings.Contains(h.Get("Allow"), "GET") {
		t.Errorf("wrong method: %d %s %v", code, b, h)
	}
	code, b, _ = f.do(t, "POST", "/v1/workflows/echo/runs", strings.NewReader(`{"inptu": 1}`), token)
	if code != 400 || errCode(t, b) != api.CodeBadRequest {
		t.Errorf("unknown field: %d %s", code, b)
	}
	code, b, _ = f.do(t, "GET", "/v1/runs?status=done", nil, token)
	if code != 400 || errCode(t, b) != api.CodeBadRequest {
		t.Errorf("bad status: %d %s", code, b)
	}
}

func TestAPI_CallOutcomes(t *testing.T) {
	f := newFixture(t, api.Config{}, true)
	if err := f.h.SetPolicy("outcomes", resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 2, InitialDelay: resilience.Duration(time.Millisecond)},
		Breaker: resilience.BreakerPolicy{FailureThreshold: 100}}); err != nil {
		t.Fatal(err)
	}
	guestCalls := func() uint64 {
		for _, p := range f.h.Plugins() {
			if p.Name == "outcomes" {
				return p.Calls
			}
		}
		t.Fatal("outcomes is not loaded")
		return 0
	}
	tests := []struct {
		name, plugin, fn, in string
		status               int
		code                 string // "" for success: the output is the input
		calls                uint64 // guest calls of outcomes (attempts)
	}{
		{"echo", "tiny", "echo", "hello", 200, "", 0},
		{"ok", "outcomes", "ok", "hello", 200, "", 1},
		{"permanent", "outcomes", "fail_permanent", "bad input", 422, api.CodePermanent, 1},
		{"failure", "outcomes", "fail", "busy", 502, api.CodePluginFailed, 2},
		{"trap", "outcomes", "trap", "", 502, api.CodePluginFailed, 2},
		{"timeout", "outcomes", "spin", "", 504, api.CodeTimeout, 2},
		{"no plugin", "ghost", "run", "", 404, api.CodePluginNotFound, 0},
		{"no export", "tiny", "nope", "", 404, api.CodeExportNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := guestCalls()
			code, b, h := f.do(t, "POST", "/v1/plugins/"+tt.plugin+"/call?function="+tt.fn, strings.NewReader(tt.in), token)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, b)
			}
			if got := guestCalls() - before; got != tt.calls {
				t.Errorf("%d guest calls, want %d", got, tt.calls)
			}
			if tt.code == "" {
				if string(b) != tt.in || h.Get("Bulkhead-Attempts") != "1" {
					t.Errorf("output %q attempts %q", b, h.Get("Bulkhead-Attempts"))
				}
				return
			}
			if got := errCode(t, b); got != tt.code {
				t.Errorf("code %s, want %s", got, tt.code)
			}
			if tt.in != "" && !strings.Contains(string(b), tt.in) {
				t.Errorf("the guest's message %q is not in %s", tt.in, b)
			}
		})
	}
	// Each call is in the latency histogram under the outcome its status
	// stands for.
	_, b, _ := f.do(t, "GET", "/metrics", nil, "")
	for _, want := range []string{
		`bulkhead_call_duration_seconds_count{outcome="success",plugin="outcomes"} 1`,
		`bulkhead_call_duration_seconds_count{outcome="permanent",plugin="outcomes"} 1`,
		`bulkhead_call_duration_seconds_count{outcome="failure",plugin="outcomes"} 2`,
		`bulkhead_call_duration_seconds_count{outcome="timeout",plugin="outcomes"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// An open breaker: 503 circuit_open, without calling the guest.
	if err := f.h.SetPolicy("outcomes", resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 1},
		Breaker: resilience.BreakerPolicy{FailureThreshold: 1, OpenTimeout: resilience.Duration(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := f.do(t, "POST", "/v1/plugins/outcomes/call?function=trap", nil, token); code != 502 {
		t.Fatalf("trap to open the breaker: %d %s", code, b)
	}
	before := guestCalls()
	code, b, _ := f.do(t, "POST", "/v1/plugins/outcomes/call?function=ok", nil, token)
	if code != 503 || errCode(t, b) != api.CodeCircuitOpen {
		t.Errorf("open breaker: %d %s", code, b)
	}
	if n := guestCalls() - before; n != 0 {
		t.Errorf("open breaker: %d guest calls", n)
	}

	// Draining: 503 draining, even for a plugin whose breaker is closed.
	f.a.Drain()
	code, b, _ = f.do(t, "POST", "/v1/plugins/tiny/call?function=echo", strings.NewReader("x"), token)
	if code != 503 || errCode(t, b) != api.CodeDraining {
		t.Errorf("draining: %d %s", code, b)
	}
}

func TestAPI_RunsAndDraining(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	ctx := context.Background()
	sub, err := f.c.Submit(ctx, "echo", json.RawMessage(`{"n":1}`), "run-1")
	if err != nil || sub.RunID != "run-1" {
		t.Fatalf("submit: %+v %v", sub, err)
	}
	again, err := f.c.Submit(ctx, "echo", json.RawMessage(`{"n":1}`), "run-1")
	if err != nil || again.RunID != "run-1" {
		t.Fatalf("resubmit: %+v %v", again, err)
	}
	_, err = f.c.Submit(ctx, "echo", json.RawMessage(`{"n":2}`), "run-1")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != api.CodeConflict {
		t.Errorf("conflicting resubmit: %v", err)
	}
	_, err = f.c.Submit(ctx, "nope", nil, "")
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown workflow: %v", err)
	}
	run, err := f.c.Run(ctx, "run-1")
	if err != nil || run.Status != statestore.StatusSucceeded || string(run.Output) != `{"n":1}` {
		t.Errorf("run: %+v %v", run, err)
	}
	if len(run.Nodes) != 1 || run.Nodes[0].Status != workflow.NodeSucceeded || string(run.Nodes[0].Output) != `{"n":1}` ||
		!run.Nodes[0].FinishedAt.Equal(run.UpdatedAt) || run.Nodes[0].FinishedAt.IsZero() {
		t.Errorf("run nodes: %+v", run.Nodes)
	}
	page, err := f.c.Runs(ctx, statestore.RunFilter{Status: statestore.StatusSucceeded})
	if err != nil || len(page.Runs) != 1 {
		t.Errorf("runs: %+v %v", page, err)
	}
	if _, err := f.c.Run(ctx, "ghost"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("missing run: %v", err)
	}
	if _, err := f.c.Cancel(ctx, "run-1"); !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("cancel finished: %v", err)
	}
	// metrics moved
	_, b, _ := f.do(t, "GET", "/metrics", nil, "")
	for _, want := range []string{"bulkhead_runs_submitted_total 2", `bulkhead_runs_finished_total{status="succeeded"} 1`, `bulkhead_component_status{component="tiny"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	f.a.Drain()
	if code, _, _ := f.do(t, "GET", "/readyz", nil, ""); code != 503 {
		t.Errorf("readyz while draining: %d", code)
	}
	if _, err := f.c.Submit(ctx, "echo", nil, "run-2"); !errors.As(err, &ae) || ae.Status != 503 || ae.Code != api.CodeDraining {
		t.Errorf("submit while draining: %v", err)
	}
	if _, err := f.c.Call(ctx, "tiny", "echo", []byte("x")); !errors.As(err, &ae) || ae.Code != api.CodeDraining {
		t.Errorf("call while draining: %v", err)
	}
	if _, err := f.c.Runs(ctx, statestore.RunFilter{}); err != nil {
		t.Errorf("reads while draining: %v", err)
	}
}

// metricValue returns the value of one series in a /metrics body.
func metricValue(t *testing.T, body []byte, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metrics lack %s", series)
	return 0
}

func TestAPI_MetricsAndStatus(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	ctx := context.Background()
	const fuel = `bulkhead_fuel_used_total{plugin="tiny"}`
	_, b, _ := f.do(t, "GET", "/metrics", nil, "")
	if v := metricValue(t, b, fuel); v != 0 {
		t.Errorf("fuel before any call: %v", v)
	}
	// One call moves the fuel counter; identical calls burn identical fuel.
	if _, err := f.c.Call(ctx, "tiny", "echo", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	_, b, _ = f.do(t, "GET", "/metrics", nil, "")
	one := metricValue(t, b, fuel)
	if one <= 0 {
		t.Fatalf("fuel after a call: %v", one)
	}
	for range 2 {
		res, err := f.c.Call(ctx, "tiny", "echo", []byte("abc"))
		if err != nil || string(res.Output) != "abc" || res.Attempts != 1 || res.Version == "" {
			t.Fatalf("call: %+v %v", res, err)
		}
	}
	_, b, _ = f.do(t, "GET", "/metrics", nil, "")
	if v := metricValue(t, b, fuel); v != 3*one {
		t.Errorf("fuel after three calls: %v, want 3 × %v", v, one)
	}
	if info, ok := f.h.Plugin("tiny"); !ok || !info.Metered || float64(info.FuelUsed) != 3*one {
		t.Errorf("fuel in /metrics %v, host reports %d (metered %v)", 3*one, info.FuelUsed, info.Metered)
	}
	for _, want := range []string{
		`bulkhead_call_duration_seconds_count{outcome="success",plugin="tiny"} 3`,
		`bulkhead_plugin_calls_total{plugin="tiny"}`,
		`bulkhead_policy_calls_total{outcome="success",policy="tiny"} 3`,
		`bulkhead_breaker_state{policy="tiny"} 0`,
		`bulkhead_pool_instances{plugin="tiny",state="idle"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	br, err := f.c.Breakers(ctx)
	if b, ok := br["plugin:tiny"]; err != nil || !ok || b.State != resilience.Closed || b.Name != "plugin:tiny" || b.Successes != 3 {
		t.Errorf("breakers: %+v %v", br, err)
	}
	hv, err := f.c.Health(ctx)
	if err != nil || hv.Status != resilience.Healthy || len(hv.Components) != 1 || hv.Components[0].Name != "tiny" ||
		hv.Components[0].Status != resilience.Healthy || hv.Components[0].Checks != 1 {
		t.Errorf("health: %+v %v", hv, err)
	}
}

func TestAPI_Resilience(t *testing.T) {
	f := newFixture(t, api.Config{Preset: "development", Policy: mustPreset(t, "development")}, false)
	ctx := context.Background()
	v, err := f.c.Resilience(ctx)
	if err != nil || v.Preset != "development" || v.Policy.Retry.MaxAttempts != 2 {
		t.Fatalf("get: %+v %v", v, err)
	}
	v, err = f.c.UpdateResilience(ctx, api.ResilienceUpdate{Policy: json.RawMessage(`{"retry":{"max_attempts":5}}`)})
	if err != nil || v.Policy.Retry.MaxAttempts != 5 || v.Policy.Breaker.FailureThreshold != 10 {
		t.Fatalf("put: %+v %v", v.Policy, err)
	}
	v, err = f.c.UpdateResilience(ctx, api.ResilienceUpdate{Plugin: "tiny", Preset: "api"})
	if err != nil || v.Plugins["tiny"].Retry.MaxAttempts != 5 || v.Policy.Retry.MaxAttempts != 5 {
		t.Fatalf("put plugin: %+v %v", v, err)
	}
	var ae *api.Error
	if _, err := f.c.UpdateResilience(ctx, api.ResilienceUpdate{Policy: json.RawMessage(`{"retry":{"multiplier":0.1}}`)}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("invalid policy: %v", err)
	}
	if _, err := f.c.UpdateResilience(ctx, api.ResilienceUpdate{Plugin: "ghost"}); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown plugin: %v", err)
	}
}

func mustPreset(t *testing.T, name string) resilience.Policy {
	p, err := resilience.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServer_StartStop(t *testing.T) {
	h := hosttest.New(t)
	a, err := api.New(api.Config{}, api.Deps{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(api.ServerConfig{Addr: "127.0.0.1:0"}, a, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + s.Addr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal("second Stop:", err)
	}
	if _, err := hc.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("still serving after Stop")
	}
}
