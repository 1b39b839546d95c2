package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// schedules ls reads the workflow files and the store: each schedule with
// its policies, the due time it fired last, that run and the next due
// time.
func TestSchedulesLs(t *testing.T) {
	tmp := t.TempDir()
	flows, data := filepath.Join(tmp, "workflows"), filepath.Join(tmp, "data")
	if err := os.MkdirAll(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"nightly.yaml": "name: nightly\nschedule: {cron: \"0 3 * * *\", overlap: queue, catch_up: all}\nnodes:\n  go: {until: \"2000-01-01T00:00:00Z\"}\n",
		"hourly.yaml":  "name: hourly\nschedule: {cron: \"@hourly\"}\nnodes:\n  go: {until: \"2000-01-01T00:00:00Z\"}\n",
		"plain.yaml":   "name: plain\nnodes:\n  go: {until: \"2000-01-01T00:00:00Z\"}\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(flows, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// An engine fires nightly's 03:00 due time; hourly never ran.
	s, err := badgerstore.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 2, 59, 58, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, err := workflow.New(s, noPlugins{}, workflow.WithClock(clock), workflow.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workflow.LoadDir(flows, workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(ws["nightly"])
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the schedule's record", func() bool {
		ss, err := e.Schedules(ctx)
		return err == nil && len(ss) == 1 && !ss[0].Last.IsZero()
	})
	mu.Lock()
	now = time.Date(2026, 1, 1, 3, 0, 1, 0, time.UTC)
	mu.Unlock()
	waitUntil(t, 10*time.Second, "the scheduled run", func() bool {
		ss, err := e.Schedules(ctx)
		return err == nil && len(ss) == 1 && ss[0].LastRun != ""
	})
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := bulkhead(t, "", "schedules", "ls", "--workflows", flows, "--data", data)
	if code != exitOK {
		t.Fatalf("schedules ls: exit %d\n%s%s", code, out, errOut)
	}
	for _, re := range []string{
		`(?m)^WORKFLOW\s+CRON\s+OVERLAP\s+CATCH UP\s+LAST\s+LAST RUN\s+NEXT$`,
		`(?m)^hourly\s+@hourly\s+skip\s+last\s+-\s+-\s+\d{4}-\d\d-\d\dT\d\d:00:00Z \(in [0-9hms]+\)$`,
		`(?m)^nightly\s+0 3 \* \* \*\s+queue\s+all\s+2026-01-01T03:00:00Z\s+sched-nightly-20260101T030000Z\s+2026-01-02T03:00:00Z \(due now\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("schedules ls: no %s in\n%s", re, out)
		}
	}
	if regexp.MustCompile(`(?m)^plain`).MatchString(out) {
		t.Errorf("a workflow without schedule listed:\n%s", out)
	}

	code, out, errOut = bulkhead(t, "", "schedules", "ls", "--workflows", flows, "--data", data, "-o", "json")
	var got struct {
		Schedules []workflow.ScheduleInfo `json:"schedules"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got.Schedules) != 2 ||
		got.Schedules[1].Workflow != "nightly" || got.Schedules[1].LastRun != "sched-nightly-20260101T030000Z" ||
		!got.Schedules[1].Next.Equal(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("schedules ls -o json: exit %d, %+v %v\n%s%s", code, got, err, out, errOut)
	}

	if code, _, errOut := bulkhead(t, "", "schedules", "ls", "--workflows", filepath.Join(tmp, "none"), "--data", data); code != exitUsage || errOut == "" {
		t.Errorf("schedules ls of a missing directory: exit %d %s", code, errOut)
	}
}
