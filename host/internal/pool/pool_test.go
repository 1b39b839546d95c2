package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type obj struct {
	id     int64
	closed atomic.Bool
	busy   atomic.Bool
}

func newTestPool(t *testing.T, min, max int, idleTimeout time.Duration, now func() time.Time) (*Pool[*obj], *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	p := New(Config[*obj]{
		Min: min, Max: max, IdleTimeout: idleTimeout, Now: now,
		New:   func(context.Context) (*obj, error) { return &obj{id: n.Add(1)}, nil },
		Close: func(o *obj) { o.closed.Store(true) },
	})
	return p, &n
}

func TestPool_BoundsAndReuse(t *testing.T) {
	p, created := newTestPool(t, 0, 3, 0, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	var peak, cur atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				o, err := p.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !o.busy.CompareAndSwap(false, true) {
					t.Error("object handed to two callers at once")
				}
				c := cur.Add(1)
				for {
					m := peak.Load()
					if c <= m || peak.CompareAndSwap(m, c) {
						break
					}
				}
				cur.Add(-1)
				o.busy.Store(false)
				p.Release(o, true)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 3 || created.Load() > 3 {
		t.Fatalf("peak %d in use, %d created; max is 3", peak.Load(), created.Load())
	}
	if s := p.Stats(); int64(s.Peak) < peak.Load() || s.Peak > 3 {
		t.Fatalf("Stats().Peak = %d; callers saw %d at once, max is 3", s.Peak, peak.Load())
	}
}

func TestPool_DiscardedObjectIsNeverReused(t *testing.T) {
	p, _ := newTestPool(t, 0, 1, 0, nil)
	ctx := context.Background()
	a, _ := p.Acquire(ctx)
	p.Release(a, false)
	if !a.closed.Load() {
		t.Fatal("discarded object not closed")
	}
	b, _ := p.Acquire(ctx)
	if a == b {
		t.Fatal("discarded object handed out again")
	}
	p.Release(b, true)
}

func TestPool_AcquireHonoursContext(t *testing.T) {
	p, _ := newTestPool(t, 0, 1, 0, nil)
	a, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a full pool = %v, want deadline exceeded", err)
	}
	p.Release(a, true)
}

func TestPool_WarmAndEvict(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	p, created := newTestPool(t, 2, 4, time.Minute, clock)
	if err := p.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Idle != 2 || created.Load() != 2 {
		t.Fatalf("after Warm: %+v, created %d", s, created.Load())
	}
	var objs []*obj
	for range 4 {
		o, _ := p.Acquire(context.Background())
		objs = append(objs, o)
	}
	for _, o := range objs {
		p.Release(o, true)
	}
	now = now.Add(2 * time.Minute)
	if n := p.EvictIdle(); n != 2 {
		t.Fatalf("evicted %d, want 2 (keep Min=2)", n)
	}
	if s := p.Stats(); s.Idle != 2 {
		t.Fatalf("idle after eviction = %d", s.Idle)
	}
}

func TestPool_CloseDrains(t *testing.T) {
	p, _ := newTestPool(t, 0, 2, 0, nil)
	a, _ := p.Acquire(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Close(context.Background()) }()
	select {
	case <-done:
		t.Fatal("Close returned while an object was out")
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close = %v", err)
	}
	p.Release(a, true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !a.closed.Load() {
		t.Fatal("object released after Close was not closed")
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal("second Close:", err)
	}
}

func BenchmarkPool_AcquireRelease(b *testing.B) {
	p := New(Config[*obj]{Max: 4,
		New:   func(context.Context) (*obj, error) { return &obj{}, nil },
		Close: func(*obj) {}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		o, _ := p.Acquire(ctx)
		p.Release(o, true)
	}
}
