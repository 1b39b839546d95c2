package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// The client decodes every read endpoint of a real API server into the
// types the server encodes.
func TestClient_Typed(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	ctx := context.Background()

	ws, err := f.c.Workflows(ctx)
	want := api.WorkflowSummary{Name: "echo", File: "echo.yaml", Nodes: []string{"echo"}, Output: "echo"}
	if err != nil || len(ws) != 1 || ws[0].Name != want.Name || ws[0].File != want.File ||
		len(ws[0].Nodes) != 1 || ws[0].Nodes[0] != "echo" || ws[0].Output != want.Output {
		t.Errorf("workflows: %+v %v", ws, err)
	}

	sub, err := f.c.Submit(ctx, "echo", []byte(`{"x":true}`), "typed-1")
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.c.Run(ctx, sub.RunID)
	if err != nil || info.ID != "typed-1" || info.Workflow != "echo" || info.CreatedAt.IsZero() ||
		len(info.Nodes) != 1 || info.Nodes[0].Plugin != "tiny" || info.Nodes[0].Attempts != 1 || info.Nodes[0].Version != "v1" {
		t.Errorf("run: %+v %v", info, err)
	}
}

// An unhealthy service answers 503 with its health, which the client
// returns typed and without error; a failed request is an *api.Error.
func TestClient_HealthUnhealthy(t *testing.T) {
	h := hosttest.New(t)
	mon := resilience.NewMonitor()
	down := func(context.Context) resilience.CheckResult {
		return resilience.CheckResult{Message: "disk gone", Metadata: map[string]any{"free": 0.0}}
	}
	if err := mon.Register("disk", down, time.Hour, resilience.Thresholds{UnhealthyAfter: 1}); err != nil {
		t.Fatal(err)
	}
	mon.CheckNow(context.Background())
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: h, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	hv, err := c.Health(context.Background())
	if err != nil || hv.Status != resilience.Unhealthy || len(hv.Components) != 1 {
		t.Fatalf("health: %+v %v", hv, err)
	}
	if d := hv.Components[0]; d.Name != "disk" || d.Status != resilience.Unhealthy || d.LastResult.Message != "disk gone" ||
		d.LastResult.Metadata["free"] != 0.0 || d.Interval.D() != time.Hour || d.LastCheck.IsZero() {
		t.Errorf("component: %+v", d)
	}

	// No engine: the run endpoints answer 503 with an API error.
	var ae *api.Error
	if _, err := c.Run(context.Background(), "r1"); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("run without an engine: %v", err)
	}
	bad, err := api.NewClient(srv.URL, "wrong", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Workflows(context.Background()); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("wrong token: %v", err)
	}
}
