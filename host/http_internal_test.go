package host

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
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
	gen := &generation{manifest: abi.Manifest{AllowedHosts: []string{"127.0.0.1"}}}
	ctx := context.WithValue(context.Background(), callKey{}, &callState{host: h, gen: gen})
	get := func(url string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := h.guestClient.Do(req)
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

	// The guest client serves guest calls only.
	req, _ := http.NewRequest(http.MethodGet, down.URL, nil)
	if resp, err := h.guestClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a request outside a guest call went through the guest client: %d", resp.StatusCode)
	}
	if n := hits.Load(); n != 5 {
		t.Fatalf("the dead server saw %d requests, want 5", n)
	}
}

// The dial check itself, called as the dialer calls it, with no socket:
// nothing here is ever dialed.
func TestAllowList_Dial(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		addr    string
		ok      bool
	}{
		{"metadata", []string{"metadata.example"}, "169.254.169.254:80", false},
		{"link-local v4", []string{"*.example"}, "169.254.10.1:443", false},
		{"link-local v6", []string{"*.example"}, "[fe80::1%eth0]:80", false},
		{"aws v6 metadata", []string{"*.example"}, "[fd00:ec2::254]:80", false},
		{"mapped v4", []string{"*.example"}, "[::ffff:169.254.169.254]:80", false},
		{"nat64", []string{"*.example"}, "[64:ff9b::a9fe:a9fe]:80", false},
		{"any-name pattern does not count", []string{"*"}, "169.254.169.254:80", false},
		{"named exactly", []string{"169.254.169.254"}, "169.254.169.254:80", true},
		{"address pattern", []string{"169.254.*"}, "169.254.169.254:80", true},
		{"v6 named", []string{"fd00:ec2::254"}, "[fd00:ec2::254]:80", true},
		{"public", nil, "203.0.113.7:443", true},
		{"loopback", nil, "127.0.0.1:80", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := (&guestNet{}).dest(tt.allowed)
			err := d.allow.dial(tt.addr, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("dial %s with %q: %v, want ok=%v", tt.addr, tt.allowed, err, tt.ok)
			}
		})
	}
}

func TestAllowList_Host(t *testing.T) {
	l := newAllowList([]string{"api.example.com", "*.svc.local", "[bad"})
	for name, want := range map[string]bool{
		"api.example.com": true, "a.svc.local": true, "evil.com": false, "[bad": true, "svc.local": false,
	} {
		if got := l.host(name); got != want {
			t.Errorf("host(%q) = %v, want %v", name, got, want)
		}
	}
}
