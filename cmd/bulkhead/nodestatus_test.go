package main

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

func TestNodeStatus(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	due := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		give workflow.NodeInfo
		want string
	}{
		{"sleeping", workflow.NodeInfo{Status: workflow.NodeWaiting, DueAt: due},
			"sleeping until 2026-12-06T03:00:00Z (in 1h)"},
		{"sleeping past its due time", workflow.NodeInfo{Status: workflow.NodeWaiting, DueAt: now.Add(-time.Second)},
			"sleeping until 2026-12-06T01:59:59Z (due now)"},
		{"waiting with a timeout", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval", DueAt: due},
			"waiting for event approval (timeout in 1h)"},
		{"waiting, timeout soon", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval", DueAt: now.Add(90*time.Second + 300*time.Millisecond)},
			"waiting for event approval (timeout in 1m30s)"},
		{"waiting, timed out", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval", DueAt: now.Add(-time.Minute)},
			"waiting for event approval (timed out at 2026-12-06T01:59:00Z)"},
		{"waiting without timeout", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval"},
			"waiting for event approval"},
		{"event node not ready", workflow.NodeInfo{Status: workflow.NodePending, Awaits: "approval"},
			"pending, then waits for event approval"},
		{"until timer not ready", workflow.NodeInfo{Status: workflow.NodePending, DueAt: due},
			"pending, then sleeps until 2026-12-06T03:00:00Z"},
		{"skipped", workflow.NodeInfo{Status: workflow.NodeSkipped, When: "false"}, "skipped"},
		{"succeeded event node", workflow.NodeInfo{Status: workflow.NodeSucceeded, Awaits: "approval", DueAt: due}, "succeeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeStatus(tt.give, now); got != tt.want {
				t.Errorf("nodeStatus = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		give time.Duration
		want string
	}{
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{26*time.Hour + 20*time.Second, "26h"},
		{59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h"},
		{45*time.Second + 200*time.Millisecond, "45s"},
		{5 * time.Minute, "5m"},
		{300 * time.Millisecond, "<1s"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.give); got != tt.want {
			t.Errorf("humanDuration(%s) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestMapProgress(t *testing.T) {
	m := &workflow.MapInfo{Total: 100, Done: 37, Failed: []workflow.ItemError{{Item: 3}, {Item: 9}}}
	if got := mapProgress(m); got != "37/100 items (2 failed)" {
		t.Errorf("mapProgress = %q", got)
	}
	if got := mapProgress(&workflow.MapInfo{Total: 3, Done: 3}); got != "3/3 items" {
		t.Errorf("mapProgress without failures = %q", got)
	}
}

// A node going to sleep is reported with its due time in the run's
// progress lines.
func TestProgressPrinter_Waiting(t *testing.T) {
	var b strings.Builder
	p := &progressPrinter{w: &b, mode: "plain", done: map[string]bool{}, prog: map[string]statestore.Progress{}}
	p.observe(workflow.Event{Kind: workflow.EventNodeWaiting, Node: "nap", Delay: time.Hour})
	p.observe(workflow.Event{Kind: workflow.EventNodeWaiting, Node: "approval"})
	want := "bulkhead: node nap waiting: due in 1h\nbulkhead: node approval waiting for its event\n"
	if b.String() != want {
		t.Errorf("progress lines %q, want %q", b.String(), want)
	}
}

func TestFollowState(t *testing.T) {
	due := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		give workflow.NodeInfo
		want string
	}{
		{"sleeping", workflow.NodeInfo{Status: workflow.NodeWaiting, DueAt: due, Attempts: 1}, "sleeping until 2026-12-06T03:00:00Z"},
		{"waiting", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval", DueAt: due, Attempts: 1},
			"waiting for event approval (timeout at 2026-12-06T03:00:00Z)"},
		{"waiting without timeout", workflow.NodeInfo{Status: workflow.NodeWaiting, Awaits: "approval"}, "waiting for event approval"},
		{"skipped", workflow.NodeInfo{Status: workflow.NodeSkipped}, "skipped"},
		{"map running", workflow.NodeInfo{Status: workflow.NodeRunning, Attempts: 1, Map: &workflow.MapInfo{Total: 10, Done: 4, Failed: []workflow.ItemError{{Item: 2}}}},
			"running (attempt 1) 4/10 items (1 failed)"},
		{"progress", workflow.NodeInfo{Status: workflow.NodeRunning, Attempts: 2, Progress: &statestore.Progress{Done: 3, Total: 9}}, "running (attempt 2) 3/9"},
		{"succeeded", workflow.NodeInfo{Status: workflow.NodeSucceeded, Attempts: 1}, "succeeded (attempt 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := followState(tt.give); got != tt.want {
				t.Errorf("followState = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNodeProgress(t *testing.T) {
	tests := []struct {
		name string
		give workflow.NodeInfo
		want string
	}{
		{"map not started", workflow.NodeInfo{Status: workflow.NodePending, Map: &workflow.MapInfo{}}, ""},
		{"map running", workflow.NodeInfo{Status: workflow.NodeRunning, Map: &workflow.MapInfo{Total: 4, Done: 1},
			Progress: &statestore.Progress{Done: 1, Total: 4}}, "1/4 items"},
		{"map over nothing", workflow.NodeInfo{Status: workflow.NodeSucceeded, Map: &workflow.MapInfo{}}, "0/0 items"},
		{"plugin progress", workflow.NodeInfo{Status: workflow.NodeRunning, Progress: &statestore.Progress{Done: 3, Total: 9}}, "3/9"},
		{"child run", workflow.NodeInfo{Status: workflow.NodeSucceeded, Child: "r1:sub"}, "child run r1:sub"},
		{"nothing", workflow.NodeInfo{Status: workflow.NodeSucceeded}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeProgress(tt.give); got != tt.want {
				t.Errorf("nodeProgress = %q, want %q", got, tt.want)
			}
		})
	}
}
