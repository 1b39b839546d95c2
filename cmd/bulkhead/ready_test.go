package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReady(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			http.Error(w, `{"status":"starting"}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	}))
	defer srv.Close()
	t.Setenv("BULKHEAD_SERVER", "")
	if code, _, errOut := bulkhead(t, "", "ready", "--server", srv.URL); code != exitFailure || !strings.Contains(errOut, "503") {
		t.Fatalf("not ready: exit %d, %s", code, errOut)
	}
	ready.Store(true)
	if code, out, errOut := bulkhead(t, "", "ready", "--server", srv.URL); code != exitOK || out != "ready\n" {
		t.Fatalf("ready: exit %d, %q %s", code, out, errOut)
	}
	t.Setenv("BULKHEAD_SERVER", srv.URL)
	if code, _, _ := bulkhead(t, "", "ready"); code != exitOK {
		t.Fatalf("ready through BULKHEAD_SERVER: exit %d", code)
	}
	srv.Close()
	if code, _, errOut := bulkhead(t, "", "ready"); code != exitFailure || !strings.Contains(errOut, "not reachable") {
		t.Fatalf("gone: exit %d, %s", code, errOut)
	}
	if code, _, _ := bulkhead(t, "", "ready", "--server", "127.0.0.1:7070"); code != exitUsage {
		t.Fatalf("URL without scheme: exit %d", code)
	}
}
