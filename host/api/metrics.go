package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Sources are what the metrics read at scrape time. Nil fields are
// skipped.
type Sources struct {
	Host    *host.Host
	Monitor *resilience.Monitor
	// Unfinished counts the stored pending and running runs.
	Unfinished func(ctx context.Context) (map[statestore.RunStatus]int, error)
	// DeadLetters counts the stored dead letters.
	DeadLetters func(ctx context.Context) (int, error)
	// Reloads counts plugin loads by plugin and cause.
	Reloads func() map[string]map[string]uint64
	// Draining reports whether the service is draining.
	Draining func() bool
	// PluginStates gives each plugin's deployment state (ok, failed,
	// quarantined) by name.
	PluginStates func() map[string]string
	// Queue gives the workflow engine's claim counters and the host name
	// it claims under.
	Queue func() (host string, st workflow.Stats)
}

// Metrics holds bulkhead's Prometheus metrics. Most are read from the
// components at scrape time (their counters already exist); the call
// latency histogram, the submission counter and the counts of the engine's
// events (Observe) are recorded as they happen.
type Metrics struct {
	reg         *prometheus.Registry
	latency     *prometheus.HistogramVec
	submitted   prometheus.Counter
	reloads     *prometheus.CounterVec
	finished    *prometheus.CounterVec
	checkpoints prometheus.Counter
}

// Call outcomes, the "outcome" label.
const (
	OutcomeSuccess     = "success"
	OutcomePermanent   = "permanent"
	OutcomeFailure     = "failure"
	OutcomeTimeout     = "timeout"
	OutcomeCircuitOpen = "circuit_open"
	OutcomeLimited     = "limited"
	OutcomeCanceled    = "canceled"
)

// Outcome names a call's result for the "outcome" label.
func Outcome(err error) string {
	if err == nil {
		return OutcomeSuccess
	}
	cause := err
	var ex *resilience.ExhaustedError
	if errors.As(err, &ex) && ex.Last() != nil {
		cause = ex.Last()
	}
	var le *host.LimitError
	switch {
	case errors.Is(cause, resilience.ErrCircuitOpen):
		return OutcomeCircuitOpen
	case errors.Is(cause, resilience.ErrLimited):
		return OutcomeLimited
	case errors.Is(cause, host.ErrPermanent), errors.As(cause, &le), errors.Is(cause, host.ErrNoPlugin), errors.Is(cause, host.ErrNoExport):
		return OutcomePermanent
	case errors.Is(cause, host.ErrTimeout), errors.Is(cause, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(cause, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeFailure
}

// NewMetrics returns the metrics over src, registered in a fresh registry
// with the Go and process collectors.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulkhead_call_duration_seconds",
			Help:    "Plugin calls through the resilience pipeline (API calls and workflow nodes), by plugin and outcome; retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"plugin", "outcome"}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkhead_runs_submitted_total", Help: "Runs submitted through the API (idempotent resubmissions included).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_api_reloads_total", Help: "Reloads asked for through the API, by plugin.",
		}, []string{"plugin"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_runs_finished_total", Help: "Runs finished since start by status (succeeded, failed, cancelled).",
		}, []string{"status"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkhead_checkpoints_written_total", Help: "Guest checkpoints saved since start.",
		}),
	}
	for _, st := range []statestore.RunStatus{statestore.StatusSucceeded, statestore.StatusFailed, statestore.StatusCancelled} {
		m.finished.WithLabelValues(string(st))
	}
	m.reg.MustRegister(m.latency, m.submitted, m.reloads, m.finished, m.checkpoints,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrape{src: src})
	return m
}

// Registry is the metrics' registry, for adding more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveCall records one call through the pipeline.
func (m *Metrics) ObserveCall(plugin, outcome string, d time.Duration) {
	m.latency.WithLabelValues(plugin, outcome).Observe(d.Seconds())
}

// Observe counts the workflow engine's finished runs and saved
// checkpoints; pass it to workflow.WithObserver. It never blocks.
func (m *Metrics) Observe(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventRunFinished:
		m.finished.WithLabelValues(string(ev.Status)).Inc()
	case workflow.EventCheckpointSaved:
		m.checkpoints.Inc()
	}
}

// Invoker is what the workflow engine calls plugins through.
type Invoker interface {
	Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error)
	Plugin(name string) (host.PluginInfo, bool)
}

// Instrument returns next with every Invoke observed in the latency
// histogram.
func (m *Metrics) Instrument(next Invoker) Invoker { return instrumented{next, m} }

type instrumented struct {
	Invoker
	m *Metrics
}

func (i instrumented) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	start := time.Now()
	res, err := i.Invoker.Invoke(ctx, req)
	i.m.ObserveCall(req.Plugin, Outcome(err), time.Since(start))
	return res, err
}

var (
	descPluginCalls    = prometheus.NewDesc("bulkhead_plugin_calls_total", "Guest calls of the loaded version of a plugin (every attempt), by plugin.", []string{"plugin"}, nil)
	descPluginFailures = prometheus.NewDesc("bulkhead_plugin_failures_total", "Failed guest calls of the loaded version of a plugin, by plugin.", []string{"plugin"}, nil)
	descFuel           = prometheus.NewDesc("bulkhead_fuel_used_total", "Fuel burned by the guest calls of the loaded version of a plugin (every attempt), by plugin; a fuel unit is about one Wasm instruction. Absent for plugins that run unmetered.", []string{"plugin"}, nil)
	descPool           = prometheus.NewDesc("bulkhead_pool_instances", "Instances in a plugin's pool, by plugin and state (idle, in_use).", []string{"plugin", "state"}, nil)
	descPoolMax        = prometheus.NewDesc("bulkhead_pool_max_instances", "The most instances a plugin's pool may hold.", []string{"plugin"}, nil)
	descCalls          = prometheus.NewDesc("bulkhead_policy_calls_total", "Calls through a resilience executor, by executor and outcome (success, failure).", []string{"policy", "outcome"}, nil)
	descAttempts       = prometheus.NewDesc("bulkhead_policy_attempts_total", "Attempts made by a resilience executor.", []string{"policy"}, nil)
	descRetries        = prometheus.NewDesc("bulkhead_retries_total", "Retries (attempts after the first) by executor.", []string{"policy"}, nil)
	descRejected       = prometheus.NewDesc("bulkhead_breaker_rejections_total", "Calls the breaker refused (circuit open).", []string{"policy"}, nil)
	descLimited        = prometheus.NewDesc("bulkhead_limiter_rejections_total", "Attempts the concurrency limiter refused.", []string{"policy"}, nil)
	descTimeouts       = prometheus.NewDesc("bulkhead_attempt_timeouts_total", "Attempts cut by the attempt timeout.", []string{"policy"}, nil)
	descOpens          = prometheus.NewDesc("bulkhead_breaker_opens_total", "Times the breaker opened.", []string{"policy"}, nil)
	descBreakerState   = prometheus.NewDesc("bulkhead_breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.", []string{"policy"}, nil)
	descRuns           = prometheus.NewDesc("bulkhead_runs_unfinished", "Stored unfinished runs by status (pending, running).", []string{"status"}, nil)
	descDeadLetters    = prometheus.NewDesc("bulkhead_dead_letters", "Dead letters waiting for replay or deletion.", nil, nil)
	descReloads        = prometheus.NewDesc("bulkhead_plugin_loads_total", "Plugin loads (first loads, hot reloads and rebuilds), by plugin and cause.", []string{"plugin", "cause"}, nil)
	descHealth         = prometheus.NewDesc("bulkhead_component_status", "Health of a component: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy.", []string{"component"}, nil)
	descDraining       = prometheus.NewDesc("bulkhead_draining", "1 while the service drains for shutdown.", nil, nil)
	descQueueClaims    = prometheus.NewDesc("bulkhead_queue_claims_total", "Nodes this host claimed from the store's queue, by host.", []string{"host"}, nil)
	descQueueRescues   = prometheus.NewDesc("bulkhead_queue_rescues_total", "Claims of nodes whose earlier owner's lease had ended, by host.", []string{"host"}, nil)
	descQueueLost      = prometheus.NewDesc("bulkhead_queue_leases_lost_total", "Claims this host lost while it held them (the lease ended, or the run was cancelled or failed elsewhere), by host.", []string{"host"}, nil)
	descQueueFenced    = prometheus.NewDesc("bulkhead_queue_fenced_writes_total", "Writes (completions, checkpoints, state) the store refused because their claim was lost, by host.", []string{"host"}, nil)
	descQueueHeartbeat = prometheus.NewDesc("bulkhead_queue_heartbeat_errors_total", "Lease heartbeats that failed, by host.", []string{"host"}, nil)
	descPluginState    = prometheus.NewDesc("bulkhead_plugin_state", "1 for a plugin's deployment state: ok, failed (a change was refused; the previous version serves) or quarantined (no working version).", []string{"plugin", "state"}, nil)
)

// pluginStates are the values of bulkhead_plugin_state's state label.
var pluginStates = []string{"ok", "failed", "quarantined"}

// scrape reads the components' own statistics at scrape time.
type scrape struct{ src Sources }

func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPluginCalls, descPluginFailures, descFuel, descPool, descPoolMax, descCalls, descAttempts,
		descRetries, descRejected, descLimited, descTimeouts, descOpens, descBreakerState, descRuns, descDeadLetters,
		descReloads, descHealth, descDraining, descPluginState,
		descQueueClaims, descQueueRescues, descQueueLost, descQueueFenced, descQueueHeartbeat} {
		ch <- d
	}
}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if h := s.src.Host; h != nil {
		for _, p := range h.Plugins() {
			counter(descPluginCalls, float64(p.Calls), p.Name)
			counter(descPluginFailures, float64(p.Failures), p.Name)
			if p.Metered {
				counter(descFuel, float64(p.FuelUsed), p.Name)
			}
			gauge(descPool, float64(p.PoolIdle), p.Name, "idle")
			gauge(descPool, float64(p.PoolInUse), p.Name, "in_use")
			gauge(descPoolMax, float64(p.PoolMax), p.Name)
		}
		for name, st := range h.Breakers() {
			name = strings.TrimPrefix(name, "plugin:")
			counter(descCalls, float64(st.Successes), name, "success")
			counter(descCalls, float64(st.Failures), name, "failure")
			counter(descAttempts, float64(st.Attempts), name)
			counter(descRetries, float64(st.Retries), name)
			counter(descRejected, float64(st.Rejected), name)
			counter(descLimited, float64(st.Limited), name)
			counter(descTimeouts, float64(st.Timeouts), name)
			counter(descOpens, float64(st.Opens), name)
			gauge(descBreakerState, float64(st.State), name)
		}
	}
	if f := s.src.Queue; f != nil {
		h, st := f()
		counter(descQueueClaims, float64(st.Claims), h)
		counter(descQueueRescues, float64(st.Rescues), h)
		counter(descQueueLost, float64(st.Lost), h)
		counter(descQueueFenced, float64(st.Fenced), h)
		counter(descQueueHeartbeat, float64(st.HeartbeatErrors), h)
	}
	if f := s.src.Unfinished; f != nil {
		if counts, err := f(ctx); err == nil {
			for _, st := range []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning} {
				gauge(descRuns, float64(counts[st]), string(st))
			}
		} else {
			ch <- prometheus.NewInvalidMetric(descRuns, err)
		}
	}
	if f := s.src.DeadLetters; f != nil {
		if n, err := f(ctx); err == nil {
			gauge(descDeadLetters, float64(n))
		} else {
			ch <- prometheus.NewInvalidMetric(descDeadLetters, err)
		}
	}
	if f := s.src.Reloads; f != nil {
		for plugin, causes := range f() {
			for cause, n := range causes {
				counter(descReloads, float64(n), plugin, cause)
			}
		}
	}
	if m := s.src.Monitor; m != nil {
		for _, c := range m.Components() {
			gauge(descHealth, float64(c.Status), c.Name)
		}
	}
	if f := s.src.Draining; f != nil {
		v := 0.0
		if f() {
			v = 1
		}
		gauge(descDraining, v)
	}
	if f := s.src.PluginStates; f != nil {
		for plugin, state := range f() {
			for _, st := range pluginStates {
				v := 0.0
				if st == state {
					v = 1
				}
				gauge(descPluginState, v, plugin, st)
			}
		}
	}
}
