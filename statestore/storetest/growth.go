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
	growthReps       = 31 // timed repetitions; their median counts
	growthTries      = 3  // the small size takes the least of this many medians; the large is timed again up to this often when near the limit
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
	median := func(f statestore.RunFilter, want []string) time.Duration {
		// Garbage of the fill is collected first, so that a collection
		// running meanwhile does not slow one size down.
		runtime.GC()
		d := make([]time.Duration, growthReps)
		for i := range d {
			t0 := time.Now()
			page(f, want)
			d[i] = time.Since(t0)
		}
		slices.Sort(d)
		return d[len(d)/2]
	}

	fill(0, growthSmall)
	small := make([]time.Duration, len(filters))
	for i, tc := range filters {
		page(tc.f, tc.want) // warm up
		small[i] = median(tc.f, tc.want)
		for range growthTries - 1 {
			small[i] = min(small[i], median(tc.f, tc.want))
		}
	}
	fill(growthSmall, large)
	for i, tc := range filters {
		page(tc.f, tc.want)
		var got time.Duration
		ok := false
		limit := growthFactor * max(small[i], time.Microsecond)
		for range growthTries {
			if got = median(tc.f, tc.want); got <= limit {
				ok = true
				break
			}
			if got > 2*limit {
				break // not noise
			}
		}
		t.Logf("%s: median %v at %d runs, %v at %d runs", tc.name, small[i], growthSmall, got, large)
		if !ok {
			t.Errorf("ListRuns(%s) took %v (median) with %d runs stored and %v with %d: more than %d× for the same page; "+
				"a filtered page must not read every run", tc.name, got, large, small[i], growthSmall, growthFactor)
		}
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
