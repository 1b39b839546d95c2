package supervisor

import (
	"context"
	"time"
)

// trigger asks for a rebuild of plugin. It never blocks: the request is
// recorded (one per plugin; a later cause does not replace an earlier
// pending one) and the loop woken.
func (s *Supervisor) trigger(plugin string, cause Cause) {
	s.mu.Lock()
	e := s.entries[plugin]
	if e == nil || s.stopped {
		s.mu.Unlock()
		return
	}
	if _, pending := s.trig[plugin]; !pending {
		s.trig[plugin] = cause
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// noteTrap counts one trapped call of plugin and triggers a rebuild once
// the threshold is reached within the window.
func (s *Supervisor) noteTrap(plugin string) {
	if s.opts.trapThreshold <= 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	e := s.entries[plugin]
	if e == nil {
		s.mu.Unlock()
		return
	}
	cut := now.Add(-s.opts.trapWindow)
	i := 0
	for i < len(e.traps) && e.traps[i].Before(cut) {
		i++
	}
	e.traps = append(e.traps[i:], now)
	hit := len(e.traps) >= s.opts.trapThreshold
	if hit {
		e.traps = e.traps[:0]
	}
	s.mu.Unlock()
	if hit {
		s.trigger(plugin, CauseTraps)
	}
}

// loop runs the rebuilds the triggers ask for, each when its plugin's
// backoff allows.
func (s *Supervisor) loop(ctx context.Context) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		next := s.runDue(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next.IsZero() {
			timer.Reset(time.Hour)
		} else {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// runDue queues a rebuild of every plugin whose trigger is due, on that
// plugin's worker, and returns when the next one will be (zero: none
// pending).
func (s *Supervisor) runDue(ctx context.Context) time.Time {
	for {
		now := time.Now()
		var name string
		var cause Cause
		var next time.Time
		s.mu.Lock()
		for p, c := range s.trig {
			e := s.entries[p]
			if e == nil {
				delete(s.trig, p)
				continue
			}
			if due := e.st.NextRebuild; due.After(now) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				continue
			}
			name, cause = p, c
			delete(s.trig, p)
			break
		}
		s.mu.Unlock()
		if name == "" || ctx.Err() != nil {
			return next
		}
		s.schedule(name, cause)
	}
}

// schedule starts the backoff step of a rebuild of plugin and queues the
// rebuild on the plugin's worker.
func (s *Supervisor) schedule(plugin string, cause Cause) {
	now := time.Now()
	s.mu.Lock()
	e := s.entries[plugin]
	if e == nil {
		s.mu.Unlock()
		return
	}
	if now.Sub(e.lastRebuild) > 2*s.opts.backoffMax {
		e.steps = 0
	}
	delay := s.opts.backoffMin
	for i := 0; i < e.steps && delay < s.opts.backoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, s.opts.backoffMax)
	e.steps++
	e.lastRebuild = now
	e.st.Rebuilds++
	e.st.NextRebuild = now.Add(delay)
	n := e.st.Rebuilds
	s.mu.Unlock()
	s.log.Warn("rebuilding plugin", keyPlugin, plugin, keyCause, cause, keyRebuilds, n, keyBackoff, delay)
	s.enqueue(plugin, job{rebuild: cause})
}

// rebuild reloads plugin from disk as it is now: a fresh compile and pool
// of the same bytes, or the file that replaced them.
func (s *Supervisor) rebuild(ctx context.Context, plugin string, cause Cause) {
	e := s.lockExisting(plugin)
	if e == nil {
		return
	}
	defer e.load.Unlock()
	b, version, m, err := s.reg.Read(plugin)
	if err != nil {
		s.refuse(e, cause, version, err)
		return
	}
	s.mu.Lock()
	serving := e.st.Version
	s.mu.Unlock()
	if s.apply(ctx, e, cause, b, version, m, nil) == nil && version != serving {
		// A different file replaced the failing one: give it traffic now
		// rather than after the open timeout. The same bytes rebuilt keep
		// the breaker, which half-opens on its own schedule.
		s.h.ResetBreaker(plugin)
	}
}
