package host_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// TestSandbox_DeniedByDefault: no filesystem, no environment, no network.
func TestSandbox_DeniedByDefault(t *testing.T) {
	t.Setenv("BULKHEAD_SANDBOX_SECRET", "hunter2")
	secret := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(secret, []byte("hunter2"), 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("reached")) }))
	defer srv.Close()

	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	ctx := context.Background()
	for _, path := range []string{secret, "/etc/passwd", "/"} {
		if out, err := h.Call(ctx, "kitchen", "readfile", []byte(path)); err == nil {
			t.Fatalf("the guest read %s: %q", path, out)
		}
	}
	if _, err := h.Call(ctx, "kitchen", "writefile", []byte(filepath.Join(t.TempDir(), "x"))); err == nil {
		t.Fatal("the guest wrote a file")
	}
	if out, err := h.Call(ctx, "kitchen", "environ", nil); err != nil || len(out) != 0 {
		t.Fatalf("the guest sees an environment: %q, %v", out, err)
	}
	_, err := h.Call(ctx, "kitchen", "http_get", []byte(srv.URL))
	if !errors.Is(err, host.ErrTrap) || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("an HTTP request with no allowed host = %v, want a trap saying it is not allowed", err)
	}
}

// TestSandbox_Allowed: a manifest opens exactly the paths and hosts it names.
func TestSandbox_Allowed(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "in.txt"), []byte("read only"), 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("reached")) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{
		AllowedPaths: map[string]string{rw: "/data", "ro:" + ro: "/ro"},
		AllowedHosts: []string{u.Hostname()},
	})
	ctx := context.Background()
	if out, err := h.Call(ctx, "kitchen", "readfile", []byte("/ro/in.txt")); err != nil || string(out) != "read only" {
		t.Fatalf("read /ro/in.txt = %q, %v", out, err)
	}
	if _, err := h.Call(ctx, "kitchen", "writefile", []byte("/ro/out.txt")); err == nil {
		t.Fatal("the guest wrote into a read-only mount")
	}
	if _, err := h.Call(ctx, "kitchen", "writefile", []byte("/data/out.txt")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "written" {
		t.Fatalf("host side of /data/out.txt = %q, %v", b, err)
	}
	if _, err := h.Call(ctx, "kitchen", "readfile", []byte("/etc/passwd")); err == nil {
		t.Fatal("a mount opened the rest of the filesystem")
	}
	if out, err := h.Call(ctx, "kitchen", "http_get", []byte(srv.URL)); err != nil || string(out) != "200 reached" {
		t.Fatalf("allowed HTTP = %q, %v", out, err)
	}
	_, err := h.Call(ctx, "kitchen", "http_get", []byte("http://localhost:1/"))
	if err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("a host outside the allow list = %v", err)
	}
}

// guestHost returns a host with the kitchen fixture loaded under m, whose
// guest requests also refuse the addresses in refuse.
func guestHost(t *testing.T, m abi.Manifest, refuse ...netip.Prefix) *host.Host {
	t.Helper()
	h := newHost(t)
	host.RefuseGuestAddresses(h, refuse...)
	load(t, h, "kitchen", m)
	return h
}

// counting serves body and counts the requests it receives.
func counting(t *testing.T, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A redirect is a hop like any other: to a host the plugin may not reach,
// it is refused before a byte is sent there; to an allowed one, it works.
func TestGuestTransport_RedirectChecked(t *testing.T) {
	target, hits := counting(t, "secret")
	tu, _ := url.Parse(target.URL)
	// The target is reached as "localhost", a name the list below lacks.
	elsewhere := "http://localhost:" + tu.Port() + "/"
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere, http.StatusFound)
	}))
	defer redirector.Close()
	ctx := context.Background()

	h := guestHost(t, abi.Manifest{AllowedHosts: []string{"127.0.0.1"}})
	out, err := h.Call(ctx, "kitchen", "http_get", []byte(redirector.URL))
	if err == nil || !strings.Contains(err.Error(), `redirect to "localhost" refused`) {
		t.Fatalf("redirect to a host outside allowed_hosts = %q, %v; want it refused", out, err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the disallowed server received %d requests", n)
	}

	h2 := guestHost(t, abi.Manifest{AllowedHosts: []string{"127.0.0.1", "local*"}})
	if out, err := h2.Call(ctx, "kitchen", "http_get", []byte(redirector.URL)); err != nil || string(out) != "200 secret" {
		t.Fatalf("redirect to an allowed host = %q, %v", out, err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("the allowed server received %d requests, want 1", n)
	}
}

// An allowed name that resolves to a refused address is refused at the
// dial, before any packet leaves: the test refuses loopback too, so the
// whole path runs against a local server; naming the address opens it.
func TestGuestTransport_ResolvedAddressChecked(t *testing.T) {
	srv, hits := counting(t, "reached")
	u, _ := url.Parse(srv.URL)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	ctx := context.Background()
	byName := "http://localhost:" + u.Port() + "/"

	h := guestHost(t, abi.Manifest{AllowedHosts: []string{"localhost"}}, loopback...)
	_, err := h.Call(ctx, "kitchen", "http_get", []byte(byName))
	if err == nil || !strings.Contains(err.Error(), "link-local or metadata address not in allowed_hosts") {
		t.Fatalf("an allowed name resolving to a refused address = %v, want it refused", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server received %d requests", n)
	}
	h2 := guestHost(t, abi.Manifest{AllowedHosts: []string{"localhost", "127.0.0.1", "::1"}}, loopback...)
	if out, err := h2.Call(ctx, "kitchen", "http_get", []byte(byName)); err != nil || string(out) != "200 reached" {
		t.Fatalf("with the address allowed = %q, %v", out, err)
	}
}

// TestSandbox_ProcessHTTPUntouched: on both engines, New, guest HTTP
// requests (allowed and refused, with a redirect) and Stop leave the
// process's http.DefaultClient and http.DefaultTransport as they were, and
// guest requests never go through them.
func TestSandbox_ProcessHTTPUntouched(t *testing.T) {
	client, transport := http.DefaultClient, http.DefaultTransport
	before := *http.DefaultClient
	var viaDefault atomic.Int64
	spy := &countingTransport{n: &viaDefault, base: http.DefaultTransport}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		w.Write([]byte("reached"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	for _, engine := range []string{abi.EngineNative, abi.EngineExtism} {
		t.Run(engine, func(t *testing.T) {
			// A spy in place of the default transport while the host runs:
			// a guest request that reached it would be counted.
			http.DefaultTransport = spy
			defer func() { http.DefaultTransport = transport }()
			h, err := host.New(host.WithEngine(engine), host.WithCacheDir(hostCacheDir()))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := h.Load(ctx, "kitchen", kitchenWasm, abi.Manifest{AllowedHosts: []string{u.Hostname()}}); err != nil {
				t.Fatal(err)
			}
			if out, err := h.Call(ctx, "kitchen", "http_get", []byte(srv.URL+"/hop")); err != nil || string(out) != "200 reached" {
				t.Fatalf("allowed HTTP through a redirect = %q, %v", out, err)
			}
			if _, err := h.Call(ctx, "kitchen", "http_get", []byte("http://not-allowed.invalid/")); !errors.Is(err, host.ErrTrap) {
				t.Fatalf("refused HTTP = %v, want a trap", err)
			}
			if err := h.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if http.DefaultTransport != spy || viaDefault.Load() != 0 {
				t.Fatalf("guest requests went through http.DefaultTransport (%d)", viaDefault.Load())
			}
		})
	}
	if http.DefaultClient != client || http.DefaultTransport != transport ||
		http.DefaultClient.Transport != before.Transport || http.DefaultClient.Jar != before.Jar ||
		http.DefaultClient.Timeout != before.Timeout || (http.DefaultClient.CheckRedirect == nil) != (before.CheckRedirect == nil) {
		t.Fatalf("http.DefaultClient or http.DefaultTransport changed: %+v, %v", *http.DefaultClient, http.DefaultTransport)
	}
}

type countingTransport struct {
	n    *atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func hostCacheDir() string { return hosttest.CacheDir() }
