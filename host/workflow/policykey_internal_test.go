package workflow

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestPolicyKey_CachedByValue(t *testing.T) {
	p := &resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 2}}
	first := policyKey("wf", "a", p)
	if want := computePolicyKey("wf", "a", p); first != want {
		t.Fatalf("policyKey = %q, want %q", first, want)
	}
	same := *p // another pointer to an equal policy
	if got := policyKey("wf", "a", &same); got != first {
		t.Fatalf("equal policy: %q, want %q", got, first)
	}
	changed := *p
	changed.Retry.MaxAttempts = 3
	if got := policyKey("wf", "a", &changed); got == first || got != computePolicyKey("wf", "a", &changed) {
		t.Fatalf("changed policy: %q (first %q)", got, first)
	}
	if got := policyKey("wf", "b", p); got == first {
		t.Fatalf("other node shares the key %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { policyKey("wf", "a", p) }); n != 0 {
		t.Fatalf("a cached key allocates %v times", n)
	}
}
