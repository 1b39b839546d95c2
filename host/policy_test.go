package host_test

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// A runtime override wins over the policy SetPolicy sets, before and after
// it, and Policy reports the one that runs.
func TestHost_OverridePolicyOutlivesSetPolicy(t *testing.T) {
	h, err := host.New(host.WithPolicy(resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 7}}))
	if err != nil {
		t.Fatal(err)
	}
	attempts := func(p resilience.Policy) int { return p.Retry.MaxAttempts }
	if n := attempts(h.Policy("p")); n != 7 {
		t.Errorf("unknown plugin runs %d attempts, want the default 7", n)
	}
	manifest := func(n int) resilience.Policy { return resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: n}} }
	if err := h.SetPolicy("p", manifest(3)); err != nil {
		t.Fatal(err)
	}
	if n := attempts(h.Policy("p")); n != 3 {
		t.Errorf("after SetPolicy: %d, want 3", n)
	}
	if err := h.OverridePolicy("p", manifest(1)); err != nil {
		t.Fatal(err)
	}
	if err := h.SetPolicy("p", manifest(4)); err != nil { // a reload
		t.Fatal(err)
	}
	if n := attempts(h.Policy("p")); n != 1 {
		t.Errorf("after a reload: %d, want the override's 1", n)
	}
	if got := h.PolicyOverrides(); len(got) != 1 || attempts(got["p"]) != 1 {
		t.Errorf("PolicyOverrides = %+v", got)
	}
	if err := h.OverridePolicy("p", resilience.Policy{Retry: resilience.RetryPolicy{Multiplier: 0.1}}); err == nil {
		t.Error("OverridePolicy accepted an invalid policy")
	}
}
