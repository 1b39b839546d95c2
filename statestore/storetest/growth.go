package storetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Sizes of the growth check: a filtered page is timed with growthSmall runs
// stored and again with growthLarge (growthLargeShort under -short), and
// may cost at most growthFactor times more. A store that scans every run
// for a filtered page pays the ratio of the sizes (20× or 100×).
const (
	growthSmall      = 1000
	growthLarge      = 100000
	growthLargeShort = 20000
	growthFactor     = 5
	growthFailed     = 20 // failed runs, all among the first growthSmall
	growthReps       = 31 // timed repetitions at least; their median counts
	growthWindow     = 50 * time.Millisecond
	growthTries      = 3
	// growthFloor is the least small-size time the factor applies to: an
	// empty page is a seek, and a seek in an LSM tree costs a few
	// microseconds more as its tables multiply.
	growthFloor = 20 * time.Microsecond
)

// testListRunsGrowth stores growthSmall runs, of which growthFailed failed,
// times filtered pages, grows the store to growthLarge runs (none failed)
// and times the same pages again: a store with an index per filter answers
// in time that depends on the page, not on the number of runs.
func testListRunsGrowth(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	large := growthLarge
	if testing.Short() {
		large = growthLargeShort
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	fill := func(from, to int) {
		t.Helper()
		const workers = 32
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += workers {
					st := statestore.StatusSucceeded
					if i < growthSmall && i%(growthSmall/growthFailed) == 7 {
						st = statestore.StatusFailed
					}
					_, _, err := s.CreateRun(ctx, statestore.Run{
						ID: fmt.Sprintf("run-%07d", i), Workflow: "wf", Status: st,
						CreatedAt: base.Add(time.Duration(i) * time.Millisecond),
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range growthSmall {
		if i%(growthSmall/growthFailed) == 7 {
			want = append(want, fmt.Sprintf("run-%07d", i))
		}
	}
	filters := []struct {
		name string
		f    statestore.RunFilter
		want []string
	}{
		{"failed", statestore.RunFilter{Status: statestore.StatusFailed, Limit: 10}, want[:10]},
		{"failed/newest", statestore.RunFilter{Status: statestore.StatusFailed, Limit: 10, Newest: true}, reversed(want)[:10]},
		{"failed/last", statestore.RunFilter{Status: statestore.StatusFailed, Limit: 15}, want[:15]},
		{"cancelled", statestore.RunFilter{Status: statestore.StatusCancelled, Limit: 10}, nil},
	}
	// page lists f and its next page, checking what comes back.
	page := func(f statestore.RunFilter, want []string) {
		runs, next, err := s.ListRuns(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if got := runIDs(runs); !slices.Equal(got, want) {
			t.Fatalf("ListRuns(%+v) = %v, want %v", f, got, want)
		}
		if next == "" {
			return
		}
		f.After = next
		if _, _, err := s.ListRuns(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	fill(0, growthSmall)
	g := newGrowth(len(filters))
	for i, tc := range filters {
		g.measureSmall(i, func() { page(tc.f, tc.want) })
	}
	fill(growthSmall, large)
	for i, tc := range filters {
		g.checkLarge(t, i, "ListRuns("+tc.name+")", growthSmall, large, func() { page(tc.f, tc.want) })
	}
	un, err := s.UnfinishedRuns(ctx)
	if err != nil || len(un) != 0 {
		t.Fatalf("UnfinishedRuns = %d runs, %v; want none", len(un), err)
	}
}

func runIDs(runs []statestore.Run) []string {
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

// growth times calls at a small and a large store size. The repetitions of
// one median span at least growthWindow, so that a burst of load on a busy
// machine cannot slow all of them. The small size takes the least of
// growthTries medians; the large one is timed again, up to growthTries
// times, while it exceeds the limit by less than 4×.
type growth struct{ small []time.Duration }

func newGrowth(n int) *growth { return &growth{small: make([]time.Duration, n)} }

// median returns the median time of growthReps calls of fn.
func (g *growth) median(fn func()) time.Duration {
	// Garbage of the fill is collected first, so that a collection running
	// meanwhile does not slow one size down.
	runtime.GC()
	var d []time.Duration
	for start := time.Now(); len(d) < growthReps || time.Since(start) < growthWindow; {
		t0 := time.Now()
		fn()
		d = append(d, time.Since(t0))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// measureSmall records the least of growthTries medians of fn as case i's
// time at the small size.
func (g *growth) measureSmall(i int, fn func()) {
	fn() // warm up
	g.small[i] = g.median(fn)
	for range growthTries - 1 {
		g.small[i] = min(g.small[i], g.median(fn))
	}
}

// checkLarge fails t when fn takes more than growthFactor times case i's
// small time, timing it again while the excess may be noise.
func (g *growth) checkLarge(t *testing.T, i int, what string, small, large int, fn func()) {
	t.Helper()
	for start := time.Now(); time.Since(start) < growthWindow; {
		fn() // warm up
	}
	limit := growthFactor * max(g.small[i], growthFloor)
	var got time.Duration
	for range growthTries {
		if got = g.median(fn); got <= limit {
			t.Logf("%s: median %v with %d stored, %v with %d", what, g.small[i], small, got, large)
			return
		}
		if got > 4*limit {
			break // not noise
		}
	}
	t.Errorf("%s took %v (median) with %d stored and %v with %d: more than %d× for the same page; "+
		"a filtered page must not read every record", what, got, large, g.small[i], small, growthFactor)
}

// testListDeadLettersGrowth is testListRunsGrowth for dead letters by run:
// a run's page of dead letters with growthSmall stored and with
// growthLarge (growthLargeShort under -short).
func testListDeadLettersGrowth(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	large := growthLarge
	if testing.Short() {
		large = growthLargeShort
	}
	mustCreate(t, s, "r")
	for i := range 3 {
		if _, err := s.PutDeadLetter(ctx, statestore.DeadLetter{ID: fmt.Sprintf("dl-%07d", i*300), RunID: "r", Workflow: "wf", Node: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	fill := func(from, to int) {
		t.Helper()
		const workers = 32
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += workers {
					if i%300 == 0 && i < 900 {
						continue
					}
					// Other runs' dead letters, which need no run record.
					_, err := s.PutDeadLetter(ctx, statestore.DeadLetter{ID: fmt.Sprintf("dl-%07d", i), RunID: fmt.Sprintf("other-%d", i%97), Workflow: "wf", Node: "n"})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	page := func() {
		dls, next, err := s.ListDeadLetters(ctx, statestore.DeadLetterFilter{RunID: "r", Limit: 2})
		if err != nil || len(dls) != 2 || next == "" {
			t.Fatalf("ListDeadLetters(r) = %d, next %q, %v; want 2 and a next page", len(dls), next, err)
		}
		dls, next, err = s.ListDeadLetters(ctx, statestore.DeadLetterFilter{RunID: "r", Limit: 2, After: next})
		if err != nil || len(dls) != 1 || next != "" || dls[0].ID != "dl-0000600" {
			t.Fatalf("ListDeadLetters(r) second page = %v, next %q, %v; want dl-0000600 alone", dls, next, err)
		}
	}
	fill(0, growthSmall)
	g := newGrowth(1)
	g.measureSmall(0, page)
	fill(growthSmall, large)
	g.checkLarge(t, 0, "ListDeadLetters(run)", growthSmall, large, page)
}
