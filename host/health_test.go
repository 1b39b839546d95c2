package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestHost_PluginCheck(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.Retry.MaxAttempts = 1
		p.Breaker.FailureThreshold = 4
		p.Breaker.OpenTimeout = resilience.Duration(time.Hour)
	}))
	check := h.PluginCheck("kitchen")
	ctx := context.Background()
	if r := check(ctx); !r.OK || r.Degraded {
		t.Fatalf("fresh plugin: %+v", r)
	}
	h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "echo"})
	for range 3 {
		h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "fail", Input: []byte("x")})
	}
	if r := check(ctx); !r.OK || !r.Degraded {
		t.Fatalf("3 failures in 4 calls: %+v", r)
	}
	h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "fail", Input: []byte("x")})
	if r := check(ctx); r.OK || r.Message != "circuit breaker open" {
		t.Fatalf("open breaker: %+v", r)
	}
	if r := h.PluginCheck("ghost")(ctx); r.OK {
		t.Fatalf("a plugin that is not loaded is healthy: %+v", r)
	}
}
