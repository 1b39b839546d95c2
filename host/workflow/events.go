package workflow

import (
	"context"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
)

// attemptEvents returns the host.InvokeRequest.OnAttempt of one node
// execution: EventAttemptFailed as an attempt fails (not when the run is
// cancelled or the engine stops) and EventNodeRetried as the next one
// starts, with the time between them. It is nil without an observer.
func (e *Engine) attemptEvents(rs *runState, node string) func(context.Context, int) (context.Context, func(host.AttemptEnd)) {
	if e.o.observer == nil {
		return nil
	}
	// Attempts of one Invoke run one after another: no lock needed.
	var failedAt time.Time
	return func(ctx context.Context, attempt int) (context.Context, func(host.AttemptEnd)) {
		if !failedAt.IsZero() {
			e.emit(Event{Kind: EventNodeRetried, RunID: rs.id, Workflow: rs.wf.Name, Node: node, Attempt: attempt,
				Delay: time.Since(failedAt)})
			failedAt = time.Time{}
		}
		return ctx, func(end host.AttemptEnd) {
			if end.Err == nil || rs.ctx.Err() != nil {
				return
			}
			failedAt = time.Now()
			e.emit(Event{Time: failedAt, Kind: EventAttemptFailed, RunID: rs.id, Workflow: rs.wf.Name, Node: node,
				Attempt: attempt, Version: end.Version, Err: end.Err.Error()})
		}
	}
}

type runAttrsKey struct{}

// WithRunAttrs returns a context whose Submit stores attrs in the new
// run's Attrs (the engine's own keys win), so they outlive the request
// and every resume sees them: a caller's trace context, for example.
func WithRunAttrs(ctx context.Context, attrs map[string]string) context.Context {
	return context.WithValue(ctx, runAttrsKey{}, attrs)
}

func addRunAttrs(ctx context.Context, dst map[string]string) {
	attrs, _ := ctx.Value(runAttrsKey{}).(map[string]string)
	for k, v := range attrs {
		if _, ok := dst[k]; !ok {
			dst[k] = v
		}
	}
}
