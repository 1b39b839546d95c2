package host

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestGuestTransport_BreakerPerDestination(t *testing.T) {
	var hits atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "boom", http.StatusBadGateway)
	}))
	defer down.Close()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	ctx := context.WithValue(context.Background(), callKey{}, &callState{host: h})
	get := func(url string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 5 {
		if resp := get(down.URL); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want the server's 502", resp.StatusCode)
		}
	}
	resp := get(down.URL)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("after 5 failures: %d %v, want a 503 from the open breaker", resp.StatusCode, resp.Header)
	}
	if n := hits.Load(); n != 5 {
		t.Fatalf("the dead server saw %d requests, want 5", n)
	}
	if st := h.Breakers()[HTTPPolicyName("127.0.0.1")]; st.State != resilience.Open {
		t.Fatalf("breaker %v", st.State)
	}

	// Requests that are not a guest's are not guarded.
	req, _ := http.NewRequest(http.MethodGet, down.URL, nil)
	plain, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadGateway {
		t.Fatalf("a host request was refused: %d", plain.StatusCode)
	}
}
