package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPool_Hammer: callers acquire, hold and release (some discarding, some
// giving up while they wait) on a pool much smaller than their number.
// Never more than Max objects are out or exist, no object serves two
// callers at once, every waiter ends, and the pool ends with no slot taken.
func TestPool_Hammer(t *testing.T) {
	const max, callers, rounds = 3, 16, 200
	var live, peakLive atomic.Int64
	p := New(Config[*obj]{
		Max: max,
		New: func(context.Context) (*obj, error) {
			if n := live.Add(1); n > peakLive.Load() {
				peakLive.Store(n)
			}
			return &obj{}, nil
		},
		Close: func(o *obj) { o.closed.Store(true); live.Add(-1) },
	})
	var out atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (c+i)%5 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*50*time.Microsecond)
				}
				o, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Acquire: %v", err)
					}
					continue
				}
				if n := out.Add(1); n > max {
					t.Errorf("%d objects out, Max is %d", n, max)
				}
				if o.busy.Swap(true) || o.closed.Load() {
					t.Error("an object was handed out while in use or closed")
				}
				time.Sleep(time.Duration(i%2) * 10 * time.Microsecond)
				o.busy.Store(false)
				out.Add(-1)
				p.Release(o, (c+i)%7 != 0)
			}
		}()
	}
	wg.Wait()
	if n := peakLive.Load(); n > max {
		t.Errorf("%d objects existed at once, Max is %d", n, max)
	}
	p.mu.Lock()
	held, waiters := p.held, len(p.waiters)
	p.mu.Unlock()
	if held != 0 || waiters != 0 {
		t.Errorf("after the hammer: %d slots held, %d waiters, want 0 and 0", held, waiters)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := live.Load(); n != 0 {
		t.Errorf("%d objects left open after Close", n)
	}
}

// TestPool_CloseWakesWaiterOnRelease: an Acquire waiting on a full pool
// that is then closed fails with ErrClosed once the object comes back.
func TestPool_CloseWakesWaiterOnRelease(t *testing.T) {
	p, _ := newTestPool(t, 0, 1, 0, nil)
	a, _ := p.Acquire(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Acquire(context.Background())
		errc <- err
	}()
	closed := make(chan error, 1)
	waitState(t, p, func() bool { return len(p.waiters) == 1 })
	go func() { closed <- p.Close(context.Background()) }()
	waitState(t, p, func() bool { return p.closed })
	p.Release(a, true)
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Acquire = %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !a.closed.Load() {
		t.Fatal("the released object was not closed")
	}
}

// waitState polls until cond, evaluated under p.mu, holds.
func waitState(t *testing.T, p *Pool[*obj], cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
