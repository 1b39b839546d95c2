package resilience

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Status is a component's health.
type Status int

// Statuses, from best to worst; StatusUnknown means not checked yet.
const (
	StatusUnknown Status = iota
	Healthy
	Degraded
	Unhealthy
)

var statusNames = [...]string{"unknown", "healthy", "degraded", "unhealthy"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: it reads what
// MarshalText writes and refuses anything else.
func (s *Status) UnmarshalText(b []byte) error {
	i := slices.Index(statusNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("resilience: unknown health status %q (want unknown, healthy, degraded or unhealthy)", b)
	}
	*s = Status(i)
	return nil
}

// CheckResult is what a check reports.
type CheckResult struct {
	// OK is true when the component works.
	OK bool `json:"ok"`
	// Degraded, with OK, reports reduced service: the component moves to
	// Degraded at once.
	Degraded bool           `json:"degraded,omitempty"`
	Message  string         `json:"message,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// CheckFunc checks one component. It must honour ctx; a check that
// panics or outlives its timeout counts as failed.
type CheckFunc func(ctx context.Context) CheckResult

// Thresholds set when a component changes status. Zero fields take the
// defaults.
type Thresholds struct {
	// DegradedAfter consecutive failed checks move a healthy component to
	// Degraded. 0: 1.
	DegradedAfter int `yaml:"degraded_after" json:"degraded_after"`
	// UnhealthyAfter consecutive failed checks move it to Unhealthy. 0: 3.
	UnhealthyAfter int `yaml:"unhealthy_after" json:"unhealthy_after"`
	// HealthyAfter consecutive successful checks move a degraded or
	// unhealthy component back to Healthy. 0: 2. (The first successful
	// check of an unknown component makes it Healthy at once.)
	HealthyAfter int `yaml:"healthy_after" json:"healthy_after"`
	// Timeout bounds each check. 0: the check interval.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

func (t Thresholds) withDefaults(interval time.Duration) Thresholds {
	if t.DegradedAfter == 0 {
		t.DegradedAfter = 1
	}
	if t.UnhealthyAfter == 0 {
		t.UnhealthyAfter = max(3, t.DegradedAfter)
	}
	if t.HealthyAfter == 0 {
		t.HealthyAfter = 2
	}
	if t.Timeout == 0 {
		t.Timeout = Duration(interval)
	}
	return t
}

func (t Thresholds) validate() error {
	var errs []error
	if t.DegradedAfter < 1 || t.UnhealthyAfter < 1 || t.HealthyAfter < 1 {
		errs = append(errs, errors.New("thresholds must be positive"))
	}
	if t.UnhealthyAfter < t.DegradedAfter {
		errs = append(errs, fmt.Errorf("unhealthy_after %d is below degraded_after %d", t.UnhealthyAfter, t.DegradedAfter))
	}
	if t.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Transition is a component's status change, delivered to subscribers.
type Transition struct {
	Component string      `json:"component"`
	From      Status      `json:"from"`
	To        Status      `json:"to"`
	At        time.Time   `json:"at"`
	Result    CheckResult `json:"result"`
}

// LatencyStats summarise check latencies of one component; the
// percentiles cover the last 128 checks.
type LatencyStats struct {
	Count uint64        `json:"count"`
	Last  time.Duration `json:"last"`
	Min   time.Duration `json:"min"`
	Max   time.Duration `json:"max"`
	Mean  time.Duration `json:"mean"`
	P50   time.Duration `json:"p50"`
	P95   time.Duration `json:"p95"`
}

// ComponentStatus is a snapshot of one component.
type ComponentStatus struct {
	Name                 string        `json:"name"`
	Status               Status        `json:"status"`
	Since                time.Time     `json:"since"`
	LastCheck            time.Time     `json:"last_check"`
	LastResult           CheckResult   `json:"last_result"`
	ConsecutiveFailures  int           `json:"consecutive_failures"`
	ConsecutiveSuccesses int           `json:"consecutive_successes"`
	Checks               uint64        `json:"checks"`
	Failures             uint64        `json:"failures"`
	Interval             time.Duration `json:"interval"`
	Latency              LatencyStats  `json:"latency"`
}

// Errors of the monitor.
var (
	ErrMonitorStopped  = errors.New("resilience: monitor stopped")
	ErrDuplicateCheck  = errors.New("resilience: component already registered")
	ErrUnknownCheck    = errors.New("resilience: unknown component")
	errInvalidInterval = errors.New("resilience: check interval must be positive")
)

const latencySamples = 128

type component struct {
	name     string
	check    CheckFunc
	interval time.Duration
	th       Thresholds

	runMu sync.Mutex // serialises this component's checks

	// guarded by Monitor.mu
	status       Status
	since        time.Time
	fails, succs int
	checks, nbad uint64
	last         CheckResult
	lastAt       time.Time
	lat          [latencySamples]time.Duration
	latSum       time.Duration
	latMin       time.Duration
	latMax       time.Duration
	stop         context.CancelFunc // its loop, when running
	done         chan struct{}
}

// Monitor checks registered components on their intervals and tracks
// their health. New, Register and Start follow
// the usual lifecycle; Stop is idempotent and waits for every check loop.
type Monitor struct {
	opts options

	mu      sync.Mutex
	comps   map[string]*component
	subs    []subscriber
	nextSub uint64
	ctx     context.Context // lifetime, set by Start
	cancel  context.CancelFunc
	started bool
	stopped bool
	wg      sync.WaitGroup
}

type subscriber struct {
	id uint64
	f  func(Transition)
}

// NewMonitor returns a monitor; it uses WithClock and WithLogger.
func NewMonitor(opts ...Option) *Monitor {
	return &Monitor{opts: buildOptions(opts), comps: make(map[string]*component)}
}

// Register adds a component checked every interval. th is optional (the first one is used). A component
// registered on a started monitor starts at once.
func (m *Monitor) Register(name string, check CheckFunc, interval time.Duration, th ...Thresholds) error {
	if check == nil {
		return errors.New("resilience: nil check")
	}
	if interval <= 0 {
		return errInvalidInterval
	}
	var t Thresholds
	if len(th) > 0 {
		t = th[0]
	}
	t = t.withDefaults(interval)
	if err := t.validate(); err != nil {
		return fmt.Errorf("resilience: component %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return ErrMonitorStopped
	}
	if _, ok := m.comps[name]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateCheck, name)
	}
	c := &component{name: name, check: check, interval: interval, th: t, since: m.opts.clock.Now()}
	m.comps[name] = c
	if m.started {
		m.startLoop(c)
	}
	return nil
}

// Unregister removes a component and waits for its check loop to end.
func (m *Monitor) Unregister(name string) error {
	m.mu.Lock()
	c, ok := m.comps[name]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownCheck, name)
	}
	delete(m.comps, name)
	stop, done := c.stop, c.done
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}

// Subscribe registers f, called once per status transition of any
// component, in order per component, on the checking goroutine (keep it
// quick). The returned cancel unsubscribes.
func (m *Monitor) Subscribe(f func(Transition)) (cancel func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextSub++
	id := m.nextSub
	m.subs = append(m.subs, subscriber{id: id, f: f})
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.subs = slices.DeleteFunc(m.subs, func(s subscriber) bool { return s.id == id })
	}
}

// Start starts one check loop per component; each checks at once, then
// every interval. Calling Start again is a no-op; after Stop it returns
// ErrMonitorStopped.
func (m *Monitor) Start(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return ErrMonitorStopped
	}
	if m.started {
		return nil
	}
	m.started = true
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, c := range m.comps {
		m.startLoop(c)
	}
	return nil
}

// startLoop runs c's loop. Caller holds mu.
func (m *Monitor) startLoop(c *component) {
	ctx, stop := context.WithCancel(m.ctx)
	c.stop, c.done = stop, make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(c.done)
		for {
			m.run(ctx, c)
			t := m.opts.clock.NewTimer(c.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
	}()
}

// Stop ends every check loop and waits for them within ctx. It is
// idempotent.
func (m *Monitor) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckNow runs every component's check once, in name order, on the
// calling goroutine, and applies the results as the loops would.
func (m *Monitor) CheckNow(ctx context.Context) {
	m.mu.Lock()
	comps := make([]*component, 0, len(m.comps))
	for _, c := range m.comps {
		comps = append(comps, c)
	}
	m.mu.Unlock()
	slices.SortFunc(comps, func(a, b *component) int { return cmp.Compare(a.name, b.name) })
	for _, c := range comps {
		if ctx.Err() != nil {
			return
		}
		m.run(ctx, c)
	}
}

// run checks c once and notifies subscribers of a transition.
func (m *Monitor) run(ctx context.Context, c *component) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, c.th.Timeout.D())
	start := m.opts.clock.Now()
	res := safeCheck(cctx, c.check)
	end := m.opts.clock.Now()
	timedOut := cctx.Err() != nil
	cancel()
	if ctx.Err() != nil {
		return // stopping: the result says nothing about the component
	}
	if timedOut && res.OK {
		res = CheckResult{Message: fmt.Sprintf("check timed out after %v", c.th.Timeout), Metadata: res.Metadata}
	}
	m.mu.Lock()
	tr, changed := c.apply(res, end.Sub(start), end)
	var subs []subscriber
	if changed {
		subs = slices.Clone(m.subs)
	}
	m.mu.Unlock()
	if !changed {
		return
	}
	m.opts.logger.Info("health transition", logKeyComponent, c.name, logKeyFrom, tr.From.String(),
		logKeyStatus, tr.To.String(), logKeyMessage, res.Message)
	for _, s := range subs {
		s.f(tr)
	}
}

func safeCheck(ctx context.Context, f CheckFunc) (res CheckResult) {
	defer func() {
		if r := recover(); r != nil {
			res = CheckResult{Message: fmt.Sprintf("check panicked: %v", r)}
		}
	}()
	return f(ctx)
}

// apply folds one result into c. Caller holds Monitor.mu.
func (c *component) apply(res CheckResult, lat time.Duration, now time.Time) (Transition, bool) {
	c.recordLatency(lat)
	c.checks++
	c.last, c.lastAt = res, now
	to := c.status
	switch {
	case !res.OK:
		c.nbad++
		c.fails++
		c.succs = 0
		switch {
		case c.fails >= c.th.UnhealthyAfter:
			to = Unhealthy
		case c.fails >= c.th.DegradedAfter && to != Unhealthy:
			to = Degraded
		}
	case res.Degraded:
		c.fails, c.succs = 0, 0
		to = Degraded
	default:
		c.fails = 0
		c.succs++
		if c.status == StatusUnknown || c.succs >= c.th.HealthyAfter {
			to = Healthy
		}
	}
	if to == c.status {
		return Transition{}, false
	}
	tr := Transition{Component: c.name, From: c.status, To: to, At: now, Result: res}
	c.status, c.since = to, now
	return tr, true
}

func (c *component) recordLatency(d time.Duration) {
	if c.checks == 0 || d < c.latMin {
		c.latMin = d
	}
	c.latMax = max(c.latMax, d)
	c.latSum += d
	c.lat[c.checks%latencySamples] = d
}

func (c *component) snapshot() ComponentStatus {
	s := ComponentStatus{
		Name: c.name, Status: c.status, Since: c.since, LastCheck: c.lastAt, LastResult: c.last,
		ConsecutiveFailures: c.fails, ConsecutiveSuccesses: c.succs, Checks: c.checks, Failures: c.nbad,
		Interval: c.interval,
	}
	if c.checks > 0 {
		n := min(c.checks, latencySamples)
		sample := slices.Clone(c.lat[:n])
		slices.Sort(sample)
		s.Latency = LatencyStats{
			Count: c.checks, Last: c.lat[(c.checks-1)%latencySamples], Min: c.latMin, Max: c.latMax,
			Mean: c.latSum / time.Duration(c.checks),
			P50:  sample[(len(sample)-1)*50/100], P95: sample[(len(sample)-1)*95/100],
		}
	}
	return s
}

// Status returns a snapshot of the named component.
func (m *Monitor) Status(name string) (ComponentStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.comps[name]
	if !ok {
		return ComponentStatus{}, false
	}
	return c.snapshot(), true
}

// Components returns every component's snapshot, by name.
func (m *Monitor) Components() []ComponentStatus {
	m.mu.Lock()
	out := make([]ComponentStatus, 0, len(m.comps))
	for _, c := range m.comps {
		out = append(out, c.snapshot())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b ComponentStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Overall returns the worst status among checked components:
// StatusUnknown when none has been checked.
func (m *Monitor) Overall() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	worst := StatusUnknown
	for _, c := range m.comps {
		worst = max(worst, c.status)
	}
	return worst
}

// ExecutorCheck returns a check reporting e's breaker: closed is healthy,
// half-open degraded, open failed. Metadata carries the executor's Stats
// under "stats". A plugin's health check can combine it with its own.
func ExecutorCheck(e *Executor) CheckFunc {
	return func(context.Context) CheckResult {
		s := e.Stats()
		res := CheckResult{OK: true, Message: "breaker " + s.State.String(), Metadata: map[string]any{"stats": s}}
		switch s.State {
		case HalfOpen:
			res.Degraded = true
		case Open:
			res.OK = false
		}
		return res
	}
}
