package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/resilience/resiliencetest"
)

// script is a check whose results follow a string: S ok, F failed, D degraded.
type script struct {
	mu   sync.Mutex
	plan string
	i    int
	clk  *resiliencetest.Clock
	lat  time.Duration
}

func (s *script) check(context.Context) resilience.CheckResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clk != nil {
		s.clk.Advance(s.lat) // the check "takes" lat on the fake clock
	}
	c := s.plan[s.i%len(s.plan)]
	s.i++
	switch c {
	case 'S':
		return resilience.CheckResult{OK: true}
	case 'D':
		return resilience.CheckResult{OK: true, Degraded: true, Message: "slow"}
	default:
		return resilience.CheckResult{Message: "down"}
	}
}

func TestMonitor_FlappingComponent(t *testing.T) {
	th := resilience.Thresholds{DegradedAfter: 2, UnhealthyAfter: 4, HealthyAfter: 3}
	tests := []struct {
		name string
		plan string // one check each
		want string // transitions, @ the 1-based check that caused them
	}{
		{"healthy, degraded, unhealthy, healthy", "SFFSFFFFSSFSSS",
			"unknown>healthy@1 healthy>degraded@3 degraded>unhealthy@8 unhealthy>healthy@14"},
		{"failures below degraded_after", "SFSFSFSF", "unknown>healthy@1"},
		{"recovery from degraded needs healthy_after", "SFFSSFFSSS",
			"unknown>healthy@1 healthy>degraded@3 degraded>healthy@10"},
		{"degraded result", "SDSSS", "unknown>healthy@1 healthy>degraded@2 degraded>healthy@5"},
		{"failing from the start", "FFFFSSS", "unknown>degraded@2 degraded>unhealthy@4 unhealthy>healthy@7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := resilience.NewMonitor(resilience.WithClock(resiliencetest.NewClock(time.Time{})))
			s := &script{plan: tt.plan}
			if err := m.Register("db", s.check, time.Second, th); err != nil {
				t.Fatal(err)
			}
			var got, other []string
			check := 0
			cancelA := m.Subscribe(func(tr resilience.Transition) {
				got = append(got, fmt.Sprintf("%v>%v@%d", tr.From, tr.To, check))
			})
			defer cancelA()
			cancelB := m.Subscribe(func(tr resilience.Transition) { other = append(other, tr.To.String()) })
			defer cancelB()
			for i := range tt.plan {
				check = i + 1
				m.CheckNow(context.Background())
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("transitions\n got %s\nwant %s", strings.Join(got, " "), tt.want)
			}
			if len(other) != len(got) {
				t.Fatalf("second subscriber saw %v", other)
			}
		})
	}
}

func TestMonitor_CancelledSubscriberNotNotified(t *testing.T) {
	m := resilience.NewMonitor()
	s := &script{plan: "SFFF"}
	_ = m.Register("x", s.check, time.Second, resilience.Thresholds{DegradedAfter: 1, UnhealthyAfter: 3})
	var n atomic.Int32
	cancel := m.Subscribe(func(resilience.Transition) { n.Add(1) })
	m.CheckNow(context.Background()) // unknown>healthy
	cancel()
	for range 3 {
		m.CheckNow(context.Background())
	}
	if n.Load() != 1 {
		t.Fatalf("notified %d times, want 1", n.Load())
	}
	if st, _ := m.Status("x"); st.Status != resilience.Unhealthy {
		t.Fatalf("status %v", st.Status)
	}
}

func TestMonitor_LatencyAndOverall(t *testing.T) {
	clk := resiliencetest.NewClock(time.Time{})
	m := resilience.NewMonitor(resilience.WithClock(clk))
	fast := &script{plan: "S", clk: clk, lat: 10 * time.Millisecond}
	slow := &script{plan: "SF", clk: clk, lat: 200 * time.Millisecond}
	_ = m.Register("fast", fast.check, time.Second)
	_ = m.Register("slow", slow.check, time.Second, resilience.Thresholds{DegradedAfter: 1, UnhealthyAfter: 5})
	if got := m.Overall(); got != resilience.StatusUnknown {
		t.Fatalf("overall before checks %v", got)
	}
	m.CheckNow(context.Background())
	if got := m.Overall(); got != resilience.Healthy {
		t.Fatalf("overall %v", got)
	}
	m.CheckNow(context.Background()) // slow fails once: degraded
	if got := m.Overall(); got != resilience.Degraded {
		t.Fatalf("overall %v", got)
	}
	st, ok := m.Status("fast")
	if !ok || st.Latency.Count != 2 || st.Latency.Mean != 10*time.Millisecond || st.Latency.Max != 10*time.Millisecond {
		t.Fatalf("fast %+v", st)
	}
	cs := m.Components()
	if len(cs) != 2 || cs[1].Name != "slow" || cs[1].Latency.P95 != 200*time.Millisecond || cs[1].Failures != 1 {
		t.Fatalf("components %+v", cs)
	}
}

func TestMonitor_PanicAndTimeoutFail(t *testing.T) {
	m := resilience.NewMonitor()
	_ = m.Register("panics", func(context.Context) resilience.CheckResult { panic("oops") }, time.Second)
	_ = m.Register("slow", func(ctx context.Context) resilience.CheckResult {
		<-ctx.Done()
		return resilience.CheckResult{OK: true}
	}, time.Second, resilience.Thresholds{Timeout: resilience.Duration(10 * time.Millisecond)})
	m.CheckNow(context.Background())
	for _, name := range []string{"panics", "slow"} {
		st, _ := m.Status(name)
		if st.LastResult.OK || st.ConsecutiveFailures != 1 {
			t.Errorf("%s: %+v", name, st)
		}
	}
}

func TestMonitor_Register(t *testing.T) {
	m := resilience.NewMonitor()
	okCheck := func(context.Context) resilience.CheckResult { return resilience.CheckResult{OK: true} }
	if err := m.Register("a", okCheck, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Register("a", okCheck, time.Second); !errors.Is(err, resilience.ErrDuplicateCheck) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := m.Register("b", okCheck, 0); err == nil {
		t.Fatal("zero interval accepted")
	}
	if err := m.Register("c", okCheck, time.Second, resilience.Thresholds{DegradedAfter: 5, UnhealthyAfter: 2}); err == nil {
		t.Fatal("unhealthy_after below degraded_after accepted")
	}
	if err := m.Unregister("a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unregister("a"); !errors.Is(err, resilience.ErrUnknownCheck) {
		t.Fatal(err)
	}
}

func TestMonitor_StartStop(t *testing.T) {
	clk := resiliencetest.NewClock(time.Time{})
	m := resilience.NewMonitor(resilience.WithClock(clk))
	var a, b atomic.Int32
	_ = m.Register("a", func(context.Context) resilience.CheckResult { a.Add(1); return resilience.CheckResult{OK: true} }, time.Second)
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	// registered after Start: runs at once too
	_ = m.Register("b", func(context.Context) resilience.CheckResult { b.Add(1); return resilience.CheckResult{} }, 3*time.Second)
	if err := clk.WaitTimers(ctx, 2); err != nil { // both loops asleep after their first check
		t.Fatal(err)
	}
	for range 3 {
		clk.Advance(time.Second)
		if err := clk.WaitTimers(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	if a.Load() != 4 || b.Load() != 2 {
		t.Fatalf("checks a=%d b=%d, want 4 and 2", a.Load(), b.Load())
	}
	if st, _ := m.Status("b"); st.Status != resilience.Degraded {
		t.Fatalf("b %v", st.Status)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := m.Start(ctx); !errors.Is(err, resilience.ErrMonitorStopped) {
		t.Fatalf("Start after Stop: %v", err)
	}
	// goleak (TestMain) checks every loop ended
}

func TestMonitor_StopWaitsForRunningCheck(t *testing.T) {
	m := resilience.NewMonitor()
	entered := make(chan struct{})
	_ = m.Register("blocking", func(ctx context.Context) resilience.CheckResult {
		close(entered)
		<-ctx.Done()
		return resilience.CheckResult{}
	}, time.Hour)
	_ = m.Start(context.Background())
	<-entered
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status("blocking"); st.Checks != 0 {
		t.Fatalf("a check cut by Stop was recorded: %+v", st)
	}
}

func TestExecutorCheck(t *testing.T) {
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1, OpenTimeout: resilience.Duration(time.Second)}))
	m := resilience.NewMonitor(resilience.WithClock(clk))
	_ = m.Register("plugin", resilience.ExecutorCheck(e), time.Second, resilience.Thresholds{DegradedAfter: 1, UnhealthyAfter: 1})
	var seen []string
	defer m.Subscribe(func(tr resilience.Transition) { seen = append(seen, tr.To.String()) })()
	m.CheckNow(context.Background())
	_ = e.Do(context.Background(), fail) // opens
	m.CheckNow(context.Background())
	clk.Advance(time.Second) // half-open
	m.CheckNow(context.Background())
	if strings.Join(seen, " ") != "healthy unhealthy degraded" {
		t.Fatalf("statuses %v", seen)
	}
	st, _ := m.Status("plugin")
	if s, ok := st.LastResult.Metadata["stats"].(resilience.Stats); !ok || s.Opens != 1 {
		t.Fatalf("metadata %+v", st.LastResult.Metadata)
	}
}
