package workflow

import (
	"sync"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// policyKeyOf is what a node's executor name depends on.
type policyKeyOf struct {
	wf, node string
	p        resilience.Policy
}

// policyKeys caches computePolicyKey, which encodes and hashes the policy,
// for every node execution. It is keyed by the policy's value, so it holds
// one entry per executor the host's registry holds for node policies (which
// the registry keeps for the life of the host too).
var policyKeys struct {
	mu sync.RWMutex
	m  map[policyKeyOf]string
}

// policyKey names the executor of a node's own policy: the workflow, the
// node and a hash of the policy, so a changed policy gets a fresh breaker.
func policyKey(wf, node string, p *resilience.Policy) string {
	k := policyKeyOf{wf: wf, node: node, p: *p}
	policyKeys.mu.RLock()
	name, ok := policyKeys.m[k]
	policyKeys.mu.RUnlock()
	if ok {
		return name
	}
	name = computePolicyKey(wf, node, p)
	policyKeys.mu.Lock()
	if policyKeys.m == nil {
		policyKeys.m = map[policyKeyOf]string{}
	}
	policyKeys.m[k] = name
	policyKeys.mu.Unlock()
	return name
}
