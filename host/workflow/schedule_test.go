package workflow_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func nightly(overlap, catchUp string) string {
	return fmt.Sprintf(`
name: nightly
schedule: {cron: "0 3 * * *", overlap: %s, catch_up: %s}
nodes:
  go: {until: "2000-01-01T00:00:00Z"}
`, overlap, catchUp)
}

// scheduledRuns returns the due times of the runs the schedule started, sorted.
func scheduledRuns(t *testing.T, s statestore.Store) []string {
	t.Helper()
	runs, _, err := s.ListRuns(context.Background(), statestore.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range runs {
		if due, ok := strings.CutPrefix(r.ID, "sched-nightly-"); ok {
			out = append(out, due)
		}
	}
	slices.Sort(out)
	return out
}

// settle waits until the schedule started want, then a while longer to
// see that it starts nothing more.
func settle(t *testing.T, s statestore.Store, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = scheduledRuns(t, s)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a pass and a half of the scheduler
	if got = scheduledRuns(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scheduled runs %v, want %v", got, want)
	}
}

func day(d, h, m int) time.Time { return time.Date(2026, 1, d, h, m, 0, 0, time.UTC) }

// A schedule across a restart that spans due times: one run per due time
// the catch-up policy keeps, none twice.
func TestSchedule_CatchUpAcrossRestart(t *testing.T) {
	tests := []struct {
		name    string
		catchUp string
		// down is when the engine starts again (it stopped on day 1 at
		// 03:00:05, after the day's run).
		down time.Time
		want []string
		// next is the first due time after the restart.
		next string
	}{
		{"short restart, none", workflow.CatchUpNone, day(2, 3, 0).Add(30 * time.Second),
			[]string{"20260101T030000Z", "20260102T030000Z"}, "20260103T030000Z"},
		{"long restart, none", workflow.CatchUpNone, day(4, 12, 0),
			[]string{"20260101T030000Z"}, "20260105T030000Z"},
		{"long restart, last", workflow.CatchUpLast, day(4, 12, 0),
			[]string{"20260101T030000Z", "20260104T030000Z"}, "20260105T030000Z"},
		{"long restart, all", workflow.CatchUpAll, day(4, 12, 0),
			[]string{"20260101T030000Z", "20260102T030000Z", "20260103T030000Z", "20260104T030000Z"}, "20260105T030000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := memstore.New()
			clock := &fakeClock{now: day(1, 2, 59)}
			opts := []workflow.Option{workflow.WithClock(clock.Now)}
			e := bareEngine(t, store, opts, nightly(workflow.OverlapSkip, tt.catchUp))
			settle(t, store) // armed: nothing due yet
			clock.Set(day(1, 3, 0).Add(5 * time.Second))
			settle(t, store, "20260101T030000Z")
			stop(t, e)

			clock.Set(tt.down)
			e = bareEngine(t, store, opts, nightly(workflow.OverlapSkip, tt.catchUp))
			defer stop(t, e)
			settle(t, store, tt.want...)
			// The next due time after the restart fires as usual.
			next, err := time.Parse("20060102T150405Z", tt.next)
			if err != nil {
				t.Fatal(err)
			}
			clock.Set(next)
			settle(t, store, append(slices.Clone(tt.want), tt.next)...)
			for _, due := range tt.want {
				if r := wait(t, e, "sched-nightly-"+due); r.Status != statestore.StatusSucceeded {
					t.Fatalf("run of %s %s: %s", due, r.Status, r.Error)
				}
			}
		})
	}
}

// With overlap skip a due time passes while the previous run is
// unfinished; with queue it starts once that run finished.
func TestSchedule_Overlap(t *testing.T) {
	for _, overlap := range []string{workflow.OverlapSkip, workflow.OverlapQueue} {
		t.Run(overlap, func(t *testing.T) {
			t.Parallel()
			src := fmt.Sprintf(`
name: nightly
schedule: {cron: "0 3 * * *", overlap: %s}
nodes:
  go: {wait_for: done}
`, overlap)
			store := memstore.New()
			clock := &fakeClock{now: day(1, 2, 59)}
			e := bareEngine(t, store, []workflow.Option{workflow.WithClock(clock.Now)}, src)
			defer stop(t, e)
			settle(t, store)
			clock.Set(day(1, 3, 0))
			settle(t, store, "20260101T030000Z")
			clock.Set(day(2, 3, 0))
			settle(t, store, "20260101T030000Z") // day 1's run still waits
			if _, err := e.Signal(context.Background(), "sched-nightly-20260101T030000Z", "done", "", nil); err != nil {
				t.Fatal(err)
			}
			wait(t, e, "sched-nightly-20260101T030000Z")
			if overlap == workflow.OverlapQueue {
				settle(t, store, "20260101T030000Z", "20260102T030000Z")
			} else {
				settle(t, store, "20260101T030000Z")
			}
		})
	}
}

// Two engines sharing a store start one run per due time between them.
func TestSchedule_TwoEnginesFireOnce(t *testing.T) {
	store := memstore.New()
	clock := &fakeClock{now: day(1, 2, 59)}
	opts := []workflow.Option{workflow.WithClock(clock.Now)}
	a := bareEngine(t, store, append(opts, workflow.WithOwner("a")), nightly(workflow.OverlapQueue, workflow.CatchUpAll))
	defer stop(t, a)
	b := bareEngine(t, store, append(opts, workflow.WithOwner("b")), nightly(workflow.OverlapQueue, workflow.CatchUpAll))
	defer stop(t, b)
	settle(t, store)
	var want []string
	for d := 1; d <= 3; d++ {
		clock.Set(day(d, 3, 0).Add(time.Second))
		want = append(want, fmt.Sprintf("202601%02dT030000Z", d))
		settle(t, store, want...)
	}
	infos, err := a.Schedules(context.Background())
	if err != nil || len(infos) != 1 || !infos[0].Last.Equal(day(3, 3, 0)) || !infos[0].Next.Equal(day(4, 3, 0)) {
		t.Fatalf("Schedules() = %+v, %v", infos, err)
	}
}

func TestParse_Schedule(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"bad cron", "name: x\nschedule: {cron: 'every night'}\nnodes:\n  a: {sleep: 1s}\n", `flow.yaml:2: schedule: cron "every night"`},
		{"bad overlap", "name: x\nschedule:\n  cron: '@daily'\n  overlap: maybe\nnodes:\n  a: {sleep: 1s}\n", `flow.yaml:4: schedule: overlap "maybe": want skip or queue`},
		{"bad catch_up", "name: x\nschedule: {cron: '@daily', catch_up: some}\nnodes:\n  a: {sleep: 1s}\n", `flow.yaml:2: schedule: catch_up "some": want none, last or all`},
		{"no cron", "name: x\nschedule: {overlap: skip}\nnodes:\n  a: {sleep: 1s}\n", `flow.yaml:2: schedule: cron is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workflow.Parse("flow.yaml", []byte(tt.give), workflow.ParseOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want %q", err, tt.want)
			}
		})
	}
}
