package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// send sends a request with the given headers ("Host" sets the Host
// header) and returns status and body.
func (f *fixture) send(t *testing.T, method, path, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) runExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.wf.store.GetRun(context.Background(), id)
	return err == nil
}

// Without a token, a web page on another origin cannot drive the service:
// its state-changing requests are refused before they reach a route.
func TestAPI_CrossOriginRefused(t *testing.T) {
	f := newFixture(t, api.Config{Token: noToken}, false)
	evil := map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"submit from another origin", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-1"}`, evil, 403, api.CodeCrossOrigin},
		{"submit as JSON from another origin", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-2"}`,
			map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, 403, api.CodeCrossOrigin},
		{"submit, fetch metadata only", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-3"}`,
			map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403, api.CodeCrossOrigin},
		{"submit as text/plain without an Origin", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-4"}`,
			map[string]string{"Content-Type": "text/plain"}, 415, api.CodeMediaType},
		{"submit as a form", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-5"}`,
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, api.CodeMediaType},
		{"submit with no content type", "POST", "/v1/workflows/echo/runs", `{"run_id":"csrf-6"}`, nil, 415, api.CodeMediaType},
		{"call from another origin", "POST", "/v1/plugins/tiny/call?function=echo", "x", evil, 403, api.CodeCrossOrigin},
		{"policy from another origin", "PUT", "/v1/config/resilience", `{"preset":"api"}`, evil, 403, api.CodeCrossOrigin},
		{"policy as text/plain", "PUT", "/v1/config/resilience", `{"preset":"api"}`, map[string]string{"Content-Type": "text/plain"}, 415, api.CodeMediaType},
		{"delete from a null origin", "DELETE", "/v1/dlq/x", "", map[string]string{"Origin": "null"}, 403, api.CodeCrossOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := f.send(t, tt.method, tt.path, tt.body, tt.hdr)
			if code != tt.status || errCode(t, b) != tt.code {
				t.Fatalf("%d %s, want %d %s", code, b, tt.status, tt.code)
			}
		})
	}
	for _, id := range []string{"csrf-1", "csrf-2", "csrf-3", "csrf-4", "csrf-5", "csrf-6"} {
		if f.runExists(t, id) {
			t.Errorf("run %s was created", id)
		}
	}
	if v, err := f.c.Resilience(context.Background()); err != nil || v.Preset == "api" {
		t.Errorf("the policy changed: %+v %v", v, err)
	}

	// The dashboard (same origin) and the CLI's client (no Origin) work.
	self := map[string]string{"Origin": f.srv.URL, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
	if code, b := f.send(t, "POST", "/v1/workflows/echo/runs", `{"run_id":"page-1"}`, self); code != 202 {
		t.Errorf("same-origin submit: %d %s", code, b)
	}
	if code, b := f.send(t, "GET", "/", "", map[string]string{"Sec-Fetch-Site": "none"}); code != 200 || !strings.Contains(string(b), "<title>bulkhead") {
		t.Errorf("dashboard: %d", code)
	}
	if code, b := f.send(t, "GET", "/v1/health", "", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Errorf("dashboard read: %d %s", code, b)
	}
	ctx := context.Background()
	if sub, err := f.c.Submit(ctx, "echo", json.RawMessage(`{"n":1}`), "cli-1"); err != nil || sub.RunID != "cli-1" {
		t.Errorf("client submit: %+v %v", sub, err)
	}
	if _, err := f.c.Call(ctx, "tiny", "echo", []byte("hi")); err != nil {
		t.Errorf("client call: %v", err)
	}
	if _, err := f.c.UpdateResilience(ctx, api.ResilienceUpdate{Preset: "api"}); err != nil {
		t.Errorf("client policy: %v", err)
	}
}

// Without a token, a request whose Host header is not a name of the
// service (a DNS-rebinding page) is refused; loopback names, the listen
// host and the configured public names are served.
func TestAPI_HostChecked(t *testing.T) {
	f := newFixture(t, api.Config{Token: noToken, Listen: "127.0.0.1:7070", PublicNames: []string{"bulkhead.example.com", "proxy.example:8443"}}, false)
	if _, err := f.c.Submit(context.Background(), "echo", nil, "r-1"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(f.srv.URL)
	port := u.Port()
	tests := []struct {
		host string
		ok   bool
	}{
		{"rebind.evil.example:7070", false},
		{"rebind.evil.example", false},
		{"localhost.evil.example:" + port, false},
		{"proxy.example:9999", false},
		{u.Host, true},
		{"localhost:" + port, true},
		{"LOCALHOST.:" + port, true},
		{"[::1]:" + port, true},
		{"127.0.0.2:" + port, true},
		{"bulkhead.example.com", true},
		{"Bulkhead.Example.com:443", true},
		{"proxy.example:8443", true},
	}
	for _, tt := range tests {
		for _, p := range []string{"/v1/runs/r-1", "/", "/healthz"} {
			code, b := f.send(t, "GET", p, "", map[string]string{"Host": tt.host})
			if tt.ok && code != 200 {
				t.Errorf("Host %q, %s: %d %s", tt.host, p, code, b)
			}
			if !tt.ok && (code != 403 || errCode(t, b) != api.CodeHostNotAllowed) {
				t.Errorf("Host %q, %s: %d %s, want 403 %s", tt.host, p, code, b, api.CodeHostNotAllowed)
			}
		}
	}
	// A public name's origin is the service's own, behind a proxy that
	// rewrites the Host header.
	hdr := map[string]string{"Origin": "https://bulkhead.example.com", "Content-Type": "application/json"}
	if code, b := f.send(t, "POST", "/v1/workflows/echo/runs", `{"run_id":"proxied"}`, hdr); code != 202 {
		t.Errorf("public name's origin: %d %s", code, b)
	}
	g := newFixture(t, api.Config{Token: noToken, PublicNames: []string{"tls.example:443"}}, false)
	hdr["Origin"] = "https://tls.example"
	if code, b := g.send(t, "POST", "/v1/workflows/echo/runs", `{"run_id":"proxied"}`, hdr); code != 202 {
		t.Errorf("public name's origin without its default port: %d %s", code, b)
	}
	if _, err := api.New(api.Config{PublicNames: []string{"a b/c"}}, api.Deps{Host: f.h}); err == nil {
		t.Error("a public name that is no origin was accepted")
	}

	// With a token, the token is the guard: any Host is served.
	tf := newFixture(t, api.Config{}, false)
	if code, b := tf.send(t, "GET", "/v1/plugins", "", map[string]string{"Host": "rebind.evil.example:7070", "Authorization": "Bearer " + token}); code != 200 {
		t.Errorf("with a token: %d %s", code, b)
	}
}

// IDs are capped and checked before they reach the store, and a body is
// one JSON value and nothing after it.
func TestAPI_IDsAndBodies(t *testing.T) {
	f := newFixture(t, api.Config{}, false)
	long := strings.Repeat("a", 65000)
	auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	tests := []struct {
		name, method, path, body string
	}{
		{"long run_id", "POST", "/v1/workflows/echo/runs", `{"run_id":"` + long + `"}`},
		{"run_id over the cap", "POST", "/v1/workflows/echo/runs", `{"run_id":"` + strings.Repeat("a", api.MaxIDLen+1) + `"}`},
		{"run_id with a slash", "POST", "/v1/workflows/echo/runs", `{"run_id":"a/b"}`},
		{"run_id with a NUL", "POST", "/v1/workflows/echo/runs", `{"run_id":"a\u0000b"}`},
		{"trailing garbage", "POST", "/v1/workflows/echo/runs", `{"input":1} GARBAGE`},
		{"two values", "POST", "/v1/workflows/echo/runs", `{"input":1}{"input":2}`},
		{"long path ID", "GET", "/v1/runs/" + long, ""},
		{"long cancel ID", "POST", "/v1/runs/" + long + "/cancel", ""},
		{"long checkpoints ID", "GET", "/v1/runs/" + long + "/checkpoints", ""},
		{"long node", "GET", "/v1/runs/r/checkpoints?node=" + long, ""},
		{"long cursor", "GET", "/v1/runs?after=" + long, ""},
		{"long dead letter", "GET", "/v1/dlq/" + long, ""},
		{"long dead letter replay", "POST", "/v1/dlq/" + long + "/replay", ""},
		{"long dead letter delete", "DELETE", "/v1/dlq/" + long, ""},
		{"long dlq filter", "GET", "/v1/dlq?run_id=" + long, ""},
		{"trailing garbage in a policy", "PUT", "/v1/config/resilience", `{"preset":"api"} x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := f.send(t, tt.method, tt.path, tt.body, auth)
			if code != 400 || errCode(t, b) != api.CodeBadRequest {
				t.Fatalf("%d %.300s, want 400", code, b)
			}
			if len(b) > 1024 {
				t.Errorf("a %d-byte answer", len(b))
			}
		})
	}
	runs, _, _ := f.wf.store.ListRuns(context.Background(), statestore.RunFilter{})
	if len(runs) != 0 {
		t.Errorf("%d runs created", len(runs))
	}
	ok := "run." + strings.Repeat("x", api.MaxIDLen-10) + ":1_-"
	if code, b := f.send(t, "POST", "/v1/workflows/echo/runs", `{"run_id":"`+ok+`","input":{"a":1}}`+"\n", auth); code != 202 {
		t.Errorf("an ID at the cap: %d %s", code, b)
	}
}
