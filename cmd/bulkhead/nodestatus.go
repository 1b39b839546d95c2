package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// nodeStatus is a node's status for runs show: a waiting timer says until
// when it sleeps, a waiting event node which event it waits for and when
// the wait times out, a node not ready yet what it will wait for.
func nodeStatus(n workflow.NodeInfo, now time.Time) string {
	switch {
	case n.Status == workflow.NodeWaiting && n.Awaits == "":
		return "sleeping until " + dueText(n.DueAt, now)
	case n.Status == workflow.NodeWaiting:
		s := "waiting for event " + n.Awaits
		if n.DueAt.IsZero() {
			return s
		}
		if d := n.DueAt.Sub(now); d > 0 {
			return s + " (timeout in " + humanDuration(d) + ")"
		}
		return s + " (timed out at " + n.DueAt.UTC().Format(time.RFC3339) + ")"
	case n.Status == workflow.NodePending && n.Awaits != "":
		return "pending, then waits for event " + n.Awaits
	case n.Status == workflow.NodePending && !n.DueAt.IsZero():
		return "pending, then sleeps until " + n.DueAt.UTC().Format(time.RFC3339)
	}
	return string(n.Status)
}

// dueText is a due time in UTC and how far it is from now.
func dueText(due, now time.Time) string {
	s := due.UTC().Format(time.RFC3339)
	if d := due.Sub(now); d > 0 {
		return s + " (in " + humanDuration(d) + ")"
	}
	return s + " (due now)"
}

// humanDuration is d rounded for a person: to the minute from an hour
// up, else to the second, without zero units ("1h", "1h30m", "45s").
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
	case d >= time.Second:
		d = d.Round(time.Second)
	default:
		return "<1s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// nodeProgress is the PROGRESS column of runs show: a map's items (once
// its for_each node gave them), a child run, or what the plugin reported.
func nodeProgress(n workflow.NodeInfo) string {
	switch {
	case n.Child != "":
		return "child run " + n.Child
	case n.Map != nil && (n.Map.Total > 0 || n.Status != workflow.NodePending):
		return mapProgress(n.Map)
	case n.Map == nil && n.Progress != nil:
		return fmt.Sprintf("%d/%d", n.Progress.Done, n.Progress.Total)
	}
	return ""
}

// mapProgress is a map node's progress: items done of the total, and
// the failed ones.
func mapProgress(m *workflow.MapInfo) string {
	s := fmt.Sprintf("%d/%d items", m.Done, m.Total)
	if len(m.Failed) > 0 {
		s += fmt.Sprintf(" (%d failed)", len(m.Failed))
	}
	return s
}

// waitingLine reports a timer or event node going to sleep: until its
// due time (a timer's end, an event wait's timeout), or until its event.
func waitingLine(ev workflow.Event) string {
	if ev.Delay <= 0 {
		return fmt.Sprintf("node %s waiting for its event", ev.Node)
	}
	return fmt.Sprintf("node %s waiting: due in %s", ev.Node, humanDuration(ev.Delay))
}

// followState is a node's state in the lines runs show --follow prints on
// each change: what nodestatus says without the time left (which would
// change on every poll), and a running node's progress.
func followState(n workflow.NodeInfo) string {
	switch {
	case n.Status == workflow.NodeWaiting && n.Awaits == "":
		return "sleeping until " + n.DueAt.UTC().Format(time.RFC3339)
	case n.Status == workflow.NodeWaiting && !n.DueAt.IsZero():
		return "waiting for event " + n.Awaits + " (timeout at " + n.DueAt.UTC().Format(time.RFC3339) + ")"
	case n.Status == workflow.NodeWaiting:
		return "waiting for event " + n.Awaits
	}
	state := fmt.Sprintf("%s (attempt %d)", n.Status, n.Attempts)
	if n.Attempts == 0 {
		state = string(n.Status)
	}
	switch {
	case n.Map != nil && n.Status == workflow.NodeRunning:
		state += " " + mapProgress(n.Map)
	case n.Progress != nil && n.Status == workflow.NodeRunning:
		state += fmt.Sprintf(" %d/%d", n.Progress.Done, n.Progress.Total)
	}
	return state
}
