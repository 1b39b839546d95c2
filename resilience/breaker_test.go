package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestBreaker_OpensAfterConsecutiveFailures(t *testing.T) {
	tests := []struct {
		name      string
		give      []bool // true = success
		wantState resilience.State
	}{
		{"two failures stay closed", []bool{false, false}, resilience.Closed},
		{"three failures open", []bool{false, false, false}, resilience.Open},
		{"a success resets the count", []bool{false, false, true, false, false}, resilience.Closed},
		{"failures after a success open", []bool{true, false, false, false}, resilience.Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 3}))
			for _, s := range tt.give {
				fn := fail
				if s {
					fn = ok
				}
				_ = e.Do(context.Background(), fn)
			}
			if got := e.State(); got != tt.wantState {
				t.Fatalf("state %v, want %v", got, tt.wantState)
			}
		})
	}
}

func TestBreaker_OpenFailsFastWithoutCalling(t *testing.T) {
	e, _ := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1}))
	_ = e.Do(context.Background(), fail)
	called := false
	err := e.Do(context.Background(), func(context.Context) error { called = true; return nil })
	if !errors.Is(err, resilience.ErrCircuitOpen) || called {
		t.Fatalf("err %v called %v, want ErrCircuitOpen without a call", err, called)
	}
	if s := e.Stats(); s.Rejected != 1 || s.Attempts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBreaker_SuccessesDecayFailures(t *testing.T) {
	// 3 errors among 30,000 successes, with both rules on.
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{
		FailureThreshold: 3, FailureRate: 0.5, MinimumCalls: 20, Window: resilience.Duration(10 * time.Second),
	}))
	for i := range 30_003 {
		fn := ok
		if i%10_000 == 9_999 {
			fn = fail
		}
		_ = e.Do(context.Background(), fn)
		if i%100 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	if s := e.Stats(); s.State != resilience.Closed || s.Failures != 3 || s.Opens != 0 {
		t.Fatalf("stats %+v, want closed with 3 failures", s)
	}
}

func TestBreaker_FailureRate(t *testing.T) {
	p := noRetry(resilience.BreakerPolicy{
		FailureThreshold: -1, FailureRate: 0.5, MinimumCalls: 10, Window: resilience.Duration(10 * time.Second),
	})
	tests := []struct {
		name string
		give string // S success, F failure, '.' advance 1s
		want resilience.State
	}{
		{"below minimum calls", "FFFFFFFFF", resilience.Closed},
		{"rate at threshold", "SFSFSFSFSF", resilience.Closed},
		{"rate above threshold", "SSSSFFFFFF", resilience.Open},
		{"old failures leave the window", "FFFFF..........." + "SSSSSFFFFF", resilience.Closed},
		{"failures inside the window count", "FFFFF.....SSSSF", resilience.Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, clk := newExec(t, p)
			for _, c := range tt.give {
				switch c {
				case 'S':
					_ = e.Do(context.Background(), ok)
				case 'F':
					_ = e.Do(context.Background(), fail)
				case '.':
					clk.Advance(time.Second)
				}
			}
			if got := e.State(); got != tt.want {
				t.Fatalf("state %v, want %v (stats %+v)", got, tt.want, e.Stats())
			}
		})
	}
}

func TestBreaker_HalfOpenProbes(t *testing.T) {
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{
		FailureThreshold: 1, OpenTimeout: resilience.Duration(time.Second), HalfOpenMaxProbes: 2, SuccessThreshold: 2,
	}))
	_ = e.Do(context.Background(), fail)
	if e.State() != resilience.Open {
		t.Fatal("not open")
	}
	clk.Advance(999 * time.Millisecond)
	if err := e.Do(context.Background(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
		t.Fatalf("before the open timeout: %v", err)
	}
	clk.Advance(time.Millisecond)

	g := newGate()
	var wg sync.WaitGroup
	a := async(&wg, func() error { return e.Do(context.Background(), g.fn) })
	b := async(&wg, func() error { return e.Do(context.Background(), g.fn) })
	waitEntered(t, g, 2)
	if st := e.State(); st != resilience.HalfOpen {
		t.Fatalf("state %v, want half-open", st)
	}
	// A third caller finds both probe slots taken.
	if err := e.Do(context.Background(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
		t.Fatalf("third caller: %v, want ErrCircuitOpen", err)
	}
	g.release <- nil // one of the two probes succeeds
	var rest <-chan error
	select {
	case err := <-a:
		rest = b
		if err != nil {
			t.Fatal(err)
		}
	case err := <-b:
		rest = a
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("probe did not return")
	}
	if st := e.State(); st != resilience.HalfOpen {
		t.Fatalf("after one success: %v, want half-open", st)
	}
	g.release <- nil
	if err := recv(t, rest); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if st := e.State(); st != resilience.Closed {
		t.Fatalf("after two successes: %v, want closed", st)
	}
}

func TestBreaker_HalfOpenFailureReopens(t *testing.T) {
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1, OpenTimeout: resilience.Duration(time.Second)}))
	_ = e.Do(context.Background(), fail)
	clk.Advance(time.Second)
	_ = e.Do(context.Background(), fail)
	if st := e.State(); st != resilience.Open {
		t.Fatalf("state %v, want open", st)
	}
	if s := e.Stats(); s.Opens != 2 {
		t.Fatalf("opens %d, want 2", s.Opens)
	}
}

func TestBreaker_StaleResultsIgnored(t *testing.T) {
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{
		FailureThreshold: 1, SuccessThreshold: 1, OpenTimeout: resilience.Duration(time.Second),
	}))
	g := newGate()
	var wg sync.WaitGroup
	slow := async(&wg, func() error { return e.Do(context.Background(), g.fn) }) // admitted while closed
	waitEntered(t, g, 1)
	_ = e.Do(context.Background(), fail) // opens
	clk.Advance(time.Second)
	if err := e.Do(context.Background(), ok); err != nil { // half-open probe closes it
		t.Fatal(err)
	}
	if st := e.State(); st != resilience.Closed {
		t.Fatalf("state %v, want closed", st)
	}
	g.release <- errBoom // the old call fails now: from an old generation, ignored
	if err := recv(t, slow); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	wg.Wait()
	if st := e.State(); st != resilience.Closed {
		t.Fatalf("a stale failure moved the breaker to %v", st)
	}
}

type permanentErr struct{}

func (permanentErr) Error() string   { return "bad input" }
func (permanentErr) Permanent() bool { return true }

func TestBreaker_ExcludedClassesNeverCount(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		give error
	}{
		{"wraps ErrPermanent", context.Background(), fmt.Errorf("decode: %w", resilience.ErrPermanent)},
		{"MarkPermanent", context.Background(), resilience.MarkPermanent(errBoom)},
		{"Permanent() method", context.Background(), permanentErr{}},
		{"context.Canceled from fn", context.Background(), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newExec(t, resilience.Policy{Breaker: resilience.BreakerPolicy{FailureThreshold: 1}})
			for range 5 {
				err := e.Do(tt.ctx, func(context.Context) error { return tt.give })
				if !errors.Is(err, tt.give) {
					t.Fatalf("err %v, want %v", err, tt.give)
				}
			}
			s := e.Stats()
			if s.State != resilience.Closed || s.Attempts != 5 {
				t.Fatalf("stats %+v: want closed after 5 single attempts", s)
			}
		})
	}
	t.Run("caller cancelled while running", func(t *testing.T) {
		e, _ := newExec(t, resilience.Policy{Breaker: resilience.BreakerPolicy{FailureThreshold: 1}})
		err := e.Do(cancelled, func(context.Context) error { return errBoom })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		err = e.Do(ctx, func(context.Context) error { cancel(); return errBoom })
		if !errors.Is(err, errBoom) || e.State() != resilience.Closed || e.Stats().Attempts != 1 {
			t.Fatalf("err %v state %v stats %+v", err, e.State(), e.Stats())
		}
	})
}

func TestBreaker_FatalCountsButIsNotRetried(t *testing.T) {
	errOOM := errors.New("memory cap")
	classify := func(err error) resilience.Class {
		if errors.Is(err, errOOM) {
			return resilience.Fatal
		}
		return resilience.DefaultClassifier(err)
	}
	e, _ := newExec(t, resilience.Policy{Breaker: resilience.BreakerPolicy{FailureThreshold: 1}}, resilience.WithClassifier(classify))
	err := e.Do(context.Background(), func(context.Context) error { return errOOM })
	var ex *resilience.ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 1 || !errors.Is(err, errOOM) {
		t.Fatalf("err %v", err)
	}
	if st := e.State(); st != resilience.Open {
		t.Fatalf("state %v, want open", st)
	}
}

func TestBreaker_StateChangeHook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := resilience.WithStateChange(func(name string, from, to resilience.State) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, from.String()+">"+to.String())
	})
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{
		FailureThreshold: 2, SuccessThreshold: 1, OpenTimeout: resilience.Duration(time.Second),
	}), hook)
	_ = e.Do(context.Background(), fail)
	_ = e.Do(context.Background(), fail)
	_ = e.Do(context.Background(), fail) // rejected: no transition
	clk.Advance(time.Second)
	_ = e.Do(context.Background(), fail) // probe fails
	clk.Advance(time.Second)
	_ = e.Do(context.Background(), ok)
	_ = e.Do(context.Background(), ok) // no transition
	wantList := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(wantList) {
		t.Fatalf("transitions %v, want %v", got, wantList)
	}
}

func TestBreaker_HookMayReadState(t *testing.T) {
	var seen []resilience.State
	var e *resilience.Executor
	hook := resilience.WithStateChange(func(_ string, _, to resilience.State) {
		seen = append(seen, e.Stats().State)
	})
	e, _ = newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1}), hook)
	_ = e.Do(context.Background(), fail)
	if len(seen) != 1 || seen[0] != resilience.Open {
		t.Fatalf("seen %v", seen)
	}
}

func TestExecutor_SetPolicyKeepsBreakerState(t *testing.T) {
	e, _ := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1}))
	_ = e.Do(context.Background(), fail)
	p := noRetry(resilience.BreakerPolicy{FailureThreshold: 10})
	p.Retry.MaxAttempts = 4
	if err := e.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	if st := e.State(); st != resilience.Open {
		t.Fatalf("state %v after SetPolicy, want open", st)
	}
	if got := e.Policy().Retry.MaxAttempts; got != 4 {
		t.Fatalf("max attempts %d", got)
	}
	if err := e.SetPolicy(resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: -1}}); err == nil {
		t.Fatal("invalid policy accepted")
	}
	e.ResetBreaker()
	if st := e.State(); st != resilience.Closed {
		t.Fatalf("after reset: %v", st)
	}
}
