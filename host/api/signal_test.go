package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

type noPlugins struct{}

func (noPlugins) Invoke(context.Context, host.InvokeRequest) (host.InvokeResult, error) {
	return host.InvokeResult{}, errors.New("no plugins")
}
func (noPlugins) Plugin(string) (host.PluginInfo, bool) { return host.PluginInfo{}, false }

func TestAPI_SignalRun(t *testing.T) {
	ctx := context.Background()
	e, err := workflow.New(memstore.New(), noPlugins{}, workflow.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("approve.yaml", []byte("name: approve\nnodes:\n  ok: {wait_for: approval}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop(ctx) }()
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: hosttest.New(t), Workflows: e})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(ctx, "approve", nil, "r1"); err != nil {
		t.Fatal(err)
	}
	info, err := c.Run(ctx, "r1")
	if err != nil || len(info.Nodes) != 1 || info.Nodes[0].Awaits != "approval" {
		t.Fatalf("run before the event: %+v, %v", info.Nodes, err)
	}

	res, err := c.Signal(ctx, "r1", "approval", "mail-1", []byte(`{"approved": true}`))
	if err != nil || !res.Delivered || res.ID != "mail-1" || len(res.Woken) != 1 {
		t.Fatalf("first POST: %+v, %v", res, err)
	}
	res, err = c.Signal(ctx, "r1", "approval", "mail-1", []byte(`{"approved": "twice"}`))
	if err != nil || res.Delivered {
		t.Fatalf("second POST with the same ID: %+v, %v; want not delivered", res, err)
	}
	r, err := e.Wait(ctx, "r1")
	if err != nil || r.Status != statestore.StatusSucceeded || string(r.Output) != `{"approved":true}` {
		t.Fatalf("run %s %s, %v", r.Status, r.Output, err)
	}

	tests := []struct {
		name, path, body string
		want             int
	}{
		{"not JSON", "/v1/runs/r1/events/other", "{nope", http.StatusBadRequest},
		{"no run", "/v1/runs/nope/events/approval", "1", http.StatusNotFound},
		{"bad name", "/v1/runs/r1/events/a%20b", "1", http.StatusBadRequest},
		{"bad event ID", "/v1/runs/r1/events/approval?id=a%20b", "1", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("POST %s: %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}
