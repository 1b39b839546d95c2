package resilience_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestExecutor_Hammer(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	p := resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureThreshold: 5, FailureRate: 0.5, MinimumCalls: 10,
			OpenTimeout: resilience.Duration(time.Millisecond), HalfOpenMaxProbes: 2, SuccessThreshold: 1},
		Retry:   resilience.RetryPolicy{MaxAttempts: 3, Budget: resilience.Budget{Ratio: 0.5}},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: 4, MaxQueueWait: -1},
	}
	var transitions sync.Map
	e, clk := newExec(t, p, resilience.WithStateChange(func(_ string, from, to resilience.State) {
		transitions.Store(from.String()+">"+to.String(), true)
	}))
	ctx := context.Background()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // time, policy swaps and readers, concurrently with calls
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(time.Millisecond)
			q := p
			q.Limiter.MaxConcurrent = 2 + i%3
			if err := e.SetPolicy(q); err != nil {
				t.Error(err)
				return
			}
			_ = e.Stats()
			_ = e.State()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				fail := (i+g)%3 == 0 || (i/100)%4 == g%4
				_, _ = resilience.Execute(ctx, e, func(ctx context.Context) (int, error) {
					if fail {
						return 0, resilience.RetryAfter(errBoom, 0)
					}
					return i, nil
				})
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	s := e.Stats()
	if s.Calls != uint64(8*n) || s.Successes+s.Failures != s.Calls || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Opens == 0 {
		t.Fatalf("the breaker never opened: %+v", s)
	}
	if _, ok := transitions.Load("closed>open"); !ok {
		t.Fatal("no closed>open transition reported")
	}
}

func TestLimiter_Hammer(t *testing.T) {
	const limit = 3
	e, err := resilience.New("limiter", resilience.Policy{
		Retry:   resilience.RetryPolicy{MaxAttempts: 1},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: limit, MaxQueueWait: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a lost wake-up hangs until here
	defer cancel()
	var cur, peak atomic.Int64
	var wg sync.WaitGroup
	n := 400
	if testing.Short() {
		n = 150
	}
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				err := e.Do(ctx, func(context.Context) error {
					c := cur.Add(1)
					for {
						p := peak.Load()
						if c <= p || peak.CompareAndSwap(p, c) {
							break
						}
					}
					runtime.Gosched()
					cur.Add(-1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("peak concurrency %d", peak.Load())
	if p := peak.Load(); p > limit || p < 1 {
		t.Fatalf("peak concurrency %d, limit %d", p, limit)
	}
	if s := e.Stats(); s.Successes != uint64(12*n) || s.InFlight != 0 || s.Limited != 0 {
		t.Fatalf("stats %+v", s)
	}
}
