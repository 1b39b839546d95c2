package workflow

import (
	"context"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// watch wakes the Waits of one run when it finishes or pauses on this
// engine (notify closes ch); other runs' ends do not wake them. When the
// run ended here, ended is set and final is the run as its end stored
// it, which the Waits return without reading it again.
type watch struct {
	ch      chan struct{}
	waiters int
	ended   bool
	final   statestore.Run
}

// notifyEnd is notify of a run whose end this engine stored as final.
func (e *Engine) notifyEnd(runID string, final statestore.Run) {
	e.mu.Lock()
	if w := e.watch[runID]; w != nil && final.Status.Finished() {
		w.ended, w.final = true, final
	}
	e.mu.Unlock()
	e.notify(runID, false)
}

// endOf returns the run as its end here stored it, once w was woken by
// that end.
func (e *Engine) endOf(w *watch) (statestore.Run, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return w.final.Clone(), w.ended
}

// watchRun returns the watch of runID, one more waiter on it. Called with
// e.mu held.
func (e *Engine) watchRun(runID string) *watch {
	w := e.watch[runID]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		e.watch[runID] = w
	}
	w.waiters++
	return w
}

// unwatch drops a waiter of w; the last one forgets it, so runs that end
// on another engine leave nothing behind.
func (e *Engine) unwatch(runID string, w *watch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w.waiters--
	if w.waiters == 0 && e.watch[runID] == w {
		delete(e.watch, runID)
	}
}

// executing reports whether the engine holds a claim of a node of runID.
func (e *Engine) executing(runID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[runID] != nil
}

// holdsClaimOf reports whether the engine executes a node of runID or
// holds a claim of one of its tasks that waits for a worker (a root its
// submit claimed). Called with e.mu held.
func (e *Engine) holdsClaimOf(runID string) bool {
	if e.runs[runID] != nil {
		return true
	}
	for f := range e.held {
		if f.RunID == runID {
			return true
		}
	}
	return false
}

// waitChange returns when run runID may have changed: it finished or
// paused here (w), the engine stopped (changed), or a tick passed while
// no node of the run executes here (it may have ended elsewhere; while
// one executes here, its end here wakes w, and an end elsewhere, a
// cancel, takes the claim, so the run stops executing here within a
// heartbeat).
func (e *Engine) waitChange(ctx context.Context, runID string, w *watch, changed <-chan struct{}, tick <-chan time.Time) error {
	for {
		select {
		case <-changed:
			return nil
		case <-w.ch:
			return nil
		case <-tick:
			if !e.executing(runID) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// current reports whether rs is still the engine's state of its run (a
// finish or a cancel forgets it).
func (e *Engine) current(rs *runState) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[rs.id] == rs
}
