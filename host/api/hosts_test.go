package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// TestAPI_Hosts: GET /v1/hosts lists every host with its state, and
// GET /v1/plugins says which live hosts serve each version; a store that
// cannot be reached is a 503.
func TestAPI_Hosts(t *testing.T) {
	h := hosttest.New(t)
	var listErr error
	hosts := []statestore.HostInfo{
		{ID: "a", Address: "10.0.0.1:7070", Version: "v1", Heartbeat: time.Second, Age: 100 * time.Millisecond,
			Plugins: []statestore.HostPlugin{{Plugin: "echo", Version: "aaa"}, {Plugin: "echo", Version: "bbb"}}},
		{ID: "b", Heartbeat: time.Second, Age: 2 * time.Second, Plugins: []statestore.HostPlugin{{Plugin: "echo", Version: "bbb"}}},
		{ID: "c", Heartbeat: time.Second, Age: time.Minute, Plugins: []statestore.HostPlugin{{Plugin: "echo", Version: "ccc"}}},
	}
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: h,
		Hosts: func(context.Context) ([]statestore.HostInfo, error) { return hosts, listErr }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, v := range got {
		states[v.ID] = v.State
	}
	if len(got) != 3 || states["a"] != "live" || states["b"] != "live" || states["c"] != "stale" || got[0].Address != "10.0.0.1:7070" {
		t.Errorf("hosts = %+v", got)
	}
	var body struct {
		Versions []api.ServedVersion `json:"versions"`
	}
	f := &fixture{srv: srv}
	code, b, _ := f.do(t, "GET", "/v1/plugins", nil, token)
	if err := json.Unmarshal(b, &body); code != 200 || err != nil {
		t.Fatalf("plugins: %d %s", code, b)
	}
	want := []api.ServedVersion{{Plugin: "echo", Version: "aaa", Hosts: []string{"a"}}, {Plugin: "echo", Version: "bbb", Hosts: []string{"a", "b"}}}
	if len(body.Versions) != 2 || body.Versions[0].Version != "aaa" || len(body.Versions[1].Hosts) != 2 || body.Versions[1].Hosts[1] != "b" {
		t.Errorf("versions = %+v, want %+v (c is stale)", body.Versions, want)
	}
	listErr = errors.Join(statestore.ErrUnavailable)
	if code, b, _ := f.do(t, "GET", "/v1/hosts", nil, token); code != 503 {
		t.Errorf("hosts with the store down: %d %s", code, b)
	}
	// The plugins are listed without the store, without versions.
	var down map[string]json.RawMessage
	code, b, _ = f.do(t, "GET", "/v1/plugins", nil, token)
	if err := json.Unmarshal(b, &down); code != 200 || err != nil || down["plugins"] == nil || down["versions"] != nil {
		t.Errorf("plugins with the store down: %d %s", code, b)
	}
}
