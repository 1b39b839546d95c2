package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Timer makes a node a durable timer: it runs no plugin and ends Sleep
// after it became ready (its needs journaled, or the run created), at
// Until, or at the time UntilExpr gives once the node is ready. Its output
// is its input.
type Timer struct {
	Sleep     time.Duration
	Until     time.Time
	UntilExpr *TimeExpr
}

// Wait makes a node wait for the external event Event (Engine.Signal): it
// runs no plugin, and the event's payload is its output. Without the event
// within Timeout of the node becoming ready (0: no timeout), its output is
// Default, or it fails when it has none.
type Wait struct {
	Event      string
	Timeout    time.Duration
	HasDefault bool
	Default    string
}

// NodeWaiting: a timer or event node whose needs are journaled, waiting
// for its due time or its event. It holds no worker and no memory: its
// task is queued not to be claimed before its due time.
const NodeWaiting NodeStatus = "waiting"

// EventNodeWaiting: a timer or event node was put to sleep; Delay is how
// long until its due time (0: an event node without timeout).
const EventNodeWaiting EventKind = "node_waiting"

// waitRecheck is how long an event node without timeout sleeps before it
// looks for its event again. Signal wakes it at once; the recheck only
// bounds how long a lost wake-up would delay it.
const waitRecheck = time.Hour

// builtinKeys are the timer and event keys of a node, as read.
type builtinKeys struct {
	sleep, until, waitFor, timeout, dflt *yaml.Node
}

// builtinKey reads a timer or event key of node n; false for other keys.
func (p *parser) builtinKey(n *Node, k, v *yaml.Node) bool {
	if p.builtins == nil {
		p.builtins = map[*Node]*builtinKeys{}
	}
	b := p.builtins[n]
	if b == nil {
		b = &builtinKeys{}
	}
	switch k.Value {
	case "sleep":
		b.sleep = v
	case "until":
		b.until = v
	case "wait_for":
		b.waitFor = v
	case "timeout":
		b.timeout = v
	case "default":
		b.dflt = v
	default:
		return false
	}
	p.builtins[n] = b
	return true
}

// finishBuiltin validates the timer and event keys of n and sets n.Timer
// or n.Wait. It returns false when n has none of them (a plugin node).
func (p *parser) finishBuiltin(n *Node) bool {
	b := p.builtins[n]
	if b == nil {
		return false
	}
	delete(p.builtins, n)
	kinds := 0
	for _, v := range []*yaml.Node{b.sleep, b.until, b.waitFor} {
		if v != nil {
			kinds++
		}
	}
	if kinds == 0 {
		v := b.timeout
		if v == nil {
			v = b.dflt
		}
		p.errf(v.Line, "node %q: timeout and default go with wait_for", n.Name)
		return true
	}
	if kinds > 1 {
		p.errf(n.Line, "node %q: set one of sleep, until and wait_for", n.Name)
		return true
	}
	kind := "wait_for"
	switch {
	case b.sleep != nil:
		kind = "sleep"
	case b.until != nil:
		kind = "until"
	}
	if b.waitFor == nil && (b.timeout != nil || b.dflt != nil) {
		p.errf(n.Line, "node %q: timeout and default go with wait_for, not %s", n.Name, kind)
	}
	if n.Plugin != "" || n.Config != nil || n.Policy != nil || n.Fallback != nil || n.Function != abi.ExportRun {
		p.errf(n.Line, "node %q: a %s node runs no plugin: remove plugin, function, config, policy and fallback", n.Name, kind)
	}
	n.Function = ""
	switch {
	case b.sleep != nil:
		if d, ok := p.duration(b.sleep, n.Name, "sleep"); ok {
			n.Timer = &Timer{Sleep: d}
		}
	case b.until != nil:
		s := p.str(b.until, "until")
		if strings.TrimSpace(s) == "" {
			p.errf(b.until.Line, "node %q: until: want an RFC 3339 time or an expression giving one", n.Name)
			return true
		}
		n.Timer = &Timer{}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			n.Timer.Until = t
		} else {
			p.untils = append(p.untils, pendingUntil{n, b.until})
		}
	default:
		w := &Wait{Event: p.str(b.waitFor, "wait_for")}
		if w.Event != "" && !nameRE.MatchString(w.Event) {
			p.errf(b.waitFor.Line, "node %q: wait_for: event name %q: use letters, digits, '.', '_' and '-'", n.Name, w.Event)
		}
		if b.timeout != nil {
			w.Timeout, _ = p.duration(b.timeout, n.Name, "timeout")
		}
		if b.dflt != nil {
			w.HasDefault = true
			w.Default = p.jsonText(b.dflt, n.Name)
		}
		n.Wait = w
	}
	return true
}

// duration reads a positive Go duration ("90s", "1h30m").
func (p *parser) duration(v *yaml.Node, node, what string) (time.Duration, bool) {
	s := p.str(v, what)
	if s == "" {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.errf(v.Line, "node %q: %s: %q is not a positive duration (like 90s, 30m or 24h)", node, what, s)
		return 0, false
	}
	return d, true
}

// jsonText reads a default: a string as is, a mapping or list as JSON.
func (p *parser) jsonText(v *yaml.Node, node string) string {
	if v.Kind == yaml.ScalarNode {
		return v.Value
	}
	var x any
	if err := v.Decode(&x); err != nil {
		p.errf(v.Line, "node %q: default: %v", node, err)
		return ""
	}
	b, err := json.Marshal(x)
	if err != nil {
		p.errf(v.Line, "node %q: default is not JSON-compatible: %v", node, err)
		return ""
	}
	return string(b)
}

// builtin reports whether n runs no plugin (a timer or an event node).
func (n *Node) builtin() bool { return n.Timer != nil || n.Wait != nil }

// readySince is when node n of run r became ready: when the last of its
// needs was journaled, or when the run was created.
func readySince(r statestore.Run, n *Node, results map[string]statestore.NodeResult) time.Time {
	t := r.CreatedAt
	for _, need := range n.Needs {
		if f := results[need].FinishedAt; f.After(t) {
			t = f
		}
	}
	return t
}

// dueAt is when a timer node ends, or when an event node times out (zero:
// never). r holds the run's input; results hold the node's needs. An
// until expression that gives no time is an error.
func dueAt(r statestore.Run, n *Node, results map[string]statestore.NodeResult) (time.Time, error) {
	switch {
	case n.Timer != nil && n.Timer.UntilExpr != nil:
		return n.Timer.UntilExpr.Eval(r.Input, n.Needs, results)
	case n.Timer != nil && !n.Timer.Until.IsZero():
		return n.Timer.Until, nil
	case n.Timer != nil:
		return readySince(r, n, results).Add(n.Timer.Sleep), nil
	case n.Wait != nil && n.Wait.Timeout > 0:
		return readySince(r, n, results).Add(n.Wait.Timeout), nil
	}
	return time.Time{}, nil
}

// execBuiltin executes a timer or event node of claim t: it journals the
// node's output when its time came or its event arrived; otherwise it
// gives the task back to the queue, not to be claimed before the due time,
// so the sleeping node holds no worker and no memory here.
func (e *Engine) execBuiltin(ctx context.Context, rs *runState, t statestore.Task, n *Node, input []byte, results map[string]statestore.NodeResult) (statestore.Task, bool) {
	f := t.Fence()
	r := statestore.Run{ID: rs.id, CreatedAt: rs.created, Input: rs.input}
	if n.Wait != nil {
		// Events arrive while the run is loaded here: read them afresh.
		var err error
		if r, err = e.store.GetRun(ctx, rs.id); err != nil {
			e.pause(rs, f, "read run", err)
			return statestore.Task{}, false
		}
	}
	now := e.now()
	due, err := dueAt(r, n, results)
	if err != nil {
		e.failNode(ctx, rs, f, n, input, max(t.First, 1), "", err)
		return statestore.Task{}, false
	}
	out := input
	if n.Wait != nil {
		ev, ok, err := eventOf(r, n.Wait.Event)
		if err != nil {
			e.failNode(ctx, rs, f, n, input, max(t.First, 1), "", err)
			return statestore.Task{}, false
		}
		switch {
		case ok:
			out, due = ev.Data, time.Time{}
		case !due.IsZero() && !now.Before(due):
			if !n.Wait.HasDefault {
				e.failNode(ctx, rs, f, n, input, max(t.First, 1), "",
					fmt.Errorf("no event %q within %s, and no default", n.Wait.Event, n.Wait.Timeout))
				return statestore.Task{}, false
			}
			out = []byte(n.Wait.Default)
		default:
			e.sleep(rs, f, n, due, now)
			// An event that arrived while the node looked for it found
			// its task claimed: wake the task now that it is queued.
			if r, err := e.store.GetRun(ctx, rs.id); err == nil {
				if _, ok, _ := eventOf(r, n.Wait.Event); ok {
					e.wakeNode(ctx, rs.id, n.Name)
				}
			}
			return statestore.Task{}, false
		}
	} else if now.Before(due) {
		if !e.park(t, n, due) {
			e.sleep(rs, f, n, due, now)
		}
		return statestore.Task{}, false
	}
	e.emit(Event{Kind: EventNodeStarted, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: max(t.First, 1)})
	result := statestore.NodeResult{RunID: rs.id, Node: n.Name, Output: out, Attempts: max(t.First, 1),
		StartedAt: readySince(r, n, results), FinishedAt: now, Host: e.o.owner}
	return e.completeTask(ctx, rs, f, result)
}

// sleep gives the task of a waiting node back, claimable at due (a timer's
// a little ahead of it, see park.go; or after waitRecheck when due is
// zero).
func (e *Engine) sleep(rs *runState, f statestore.Fence, n *Node, due, now time.Time) {
	delay := waitRecheck
	if !due.IsZero() {
		delay = min(e.releaseDelay(n, due.Sub(now)), delay)
	}
	e.releaseAfter(f, delay)
	var until time.Duration
	if !due.IsZero() {
		until = due.Sub(now)
	}
	e.emit(Event{Kind: EventNodeWaiting, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Delay: until})
}

// wakeNode makes the queued task of a waiting node claimable now.
func (e *Engine) wakeNode(ctx context.Context, runID, node string) {
	if err := e.store.WakeTask(ctx, runID, node); err != nil && !errors.Is(err, context.Canceled) {
		e.log.Warn("waiting node not woken; it looks for its event again later", "run_id", runID, "node", node, "err", err)
	}
	e.poke()
}

// builtinInfo fills in the due time or awaited event of a timer or event
// node that is not journaled.
func builtinInfo(ni *NodeInfo, r statestore.Run, n *Node, results map[string]statestore.NodeResult) {
	if !n.builtin() {
		return
	}
	ni.Plugin, ni.Function = "", ""
	if n.Wait != nil {
		ni.Awaits = n.Wait.Event
	}
	for _, need := range n.Needs {
		if _, ok := results[need]; !ok {
			if n.Timer != nil && !n.Timer.Until.IsZero() {
				ni.DueAt = n.Timer.Until
			}
			return // not ready yet
		}
	}
	ni.DueAt, _ = dueAt(r, n, results) // a time that is not one fails the node when it runs
	if ni.Status == NodePending && !r.Status.Finished() {
		ni.Status = NodeWaiting
	}
}
