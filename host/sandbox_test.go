package host_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
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
