package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// PluginCheck returns a health check of one plugin for a resilience.Monitor:
//
//   - not loaded, or its breaker open: failed;
//   - breaker half-open, or more than half of the calls since the previous
//     check failed: degraded;
//   - when the module exports abi.ExportHealth, that export is called (with
//     the check's context as its deadline): a non-zero code is a failure.
//
// Metadata carries the error rate, the call count, pool sizes and the
// breaker's stats.
func (h *Host) PluginCheck(name string) resilience.CheckFunc {
	var mu sync.Mutex
	var lastCalls, lastFailures uint64
	return func(ctx context.Context) resilience.CheckResult {
		info, ok := h.Plugin(name)
		if !ok {
			return resilience.CheckResult{Message: "not loaded"}
		}
		mu.Lock()
		calls, failures := info.Calls-lastCalls, info.Failures-lastFailures
		lastCalls, lastFailures = info.Calls, info.Failures
		mu.Unlock()
		rate := 0.0
		if calls > 0 {
			rate = float64(failures) / float64(calls)
		}
		meta := map[string]any{
			"version": info.Version, "calls": calls, "error_rate": rate,
			"pool_idle": info.PoolIdle, "pool_in_use": info.PoolInUse,
		}
		res := resilience.CheckResult{OK: true, Metadata: meta}
		if e, ok := h.execs.Get(PolicyName(name)); ok {
			br := resilience.ExecutorCheck(e)(ctx)
			meta["breaker"] = br.Metadata["stats"]
			if !br.OK {
				return resilience.CheckResult{Message: "circuit breaker open", Metadata: meta}
			}
			if br.Degraded {
				res.Degraded, res.Message = true, "circuit breaker half-open"
			}
		}
		if rate > 0.5 {
			res.Degraded, res.Message = true, fmt.Sprintf("%.0f%% of %d calls failed", rate*100, calls)
		}
		if slices.Contains(info.Exports, abi.ExportHealth) {
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
			}
			if _, err := h.Call(ctx, name, abi.ExportHealth, nil); err != nil {
				var ge *GuestError
				msg := err.Error()
				if errors.As(err, &ge) {
					msg = "health export: " + ge.Msg
				}
				return resilience.CheckResult{Message: msg, Metadata: meta}
			}
		}
		return res
	}
}
