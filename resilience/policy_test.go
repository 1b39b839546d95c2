package resilience_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func TestPolicy_ZeroValueIsValidDefault(t *testing.T) {
	var p resilience.Policy
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d := p.WithDefaults()
	if d.Retry.MaxAttempts != 3 || d.Breaker.FailureThreshold != 5 || d.Breaker.OpenTimeout.D() != 30*time.Second ||
		d.Retry.Jitter != resilience.JitterFactor || d.Limiter.MaxConcurrent != 0 || d.AttemptTimeout != 0 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestPolicy_ValidateReportsEveryProblem(t *testing.T) {
	p := resilience.Policy{
		Breaker:        resilience.BreakerPolicy{FailureRate: 1.5, HalfOpenMaxProbes: -1},
		Retry:          resilience.RetryPolicy{MaxAttempts: -2, Multiplier: 0.5, Jitter: "wobbly"},
		AttemptTimeout: -1,
		Chaos:          resilience.Chaos{ErrorRate: 0.7, TrapRate: 0.5, LatencyRate: 0.1},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"breaker.failure_rate", "breaker.half_open_max_probes", "retry.max_attempts", "retry.multiplier",
		"retry.jitter", "attempt_timeout", "error_rate + trap_rate", "chaos.latency",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestPolicy_YAMLAndJSON(t *testing.T) {
	src := `
breaker:
  failure_threshold: 4
  open_timeout: 1m30s
retry:
  max_attempts: 5
  initial_delay: 250ms
  jitter: decorrelated
  total_deadline: "2m"
attempt_timeout: 10s
fallback:
  value: '{"text":"unavailable"}'
chaos:
  error_rate: 0.1
`
	var p resilience.Policy
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		t.Fatal(err)
	}
	if p.Breaker.OpenTimeout.D() != 90*time.Second || p.Retry.InitialDelay.D() != 250*time.Millisecond ||
		p.Retry.TotalDeadline.D() != 2*time.Minute || p.AttemptTimeout.D() != 10*time.Second ||
		p.Retry.Jitter != resilience.JitterDecorrelated || !p.Fallback.IsSet() || p.Chaos.ErrorRate != 0.1 {
		t.Fatalf("parsed %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, codec := range map[string]struct {
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}{"json": {json.Marshal, json.Unmarshal}, "yaml": {yaml.Marshal, yaml.Unmarshal}} {
		b, err := codec.marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "1m30s") {
			t.Errorf("%s: durations not written as strings:\n%s", name, b)
		}
		var back resilience.Policy
		if err := codec.unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back != p {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", name, back, p)
		}
	}
}

func TestDuration_Rejects(t *testing.T) {
	tests := []struct{ name, give string }{
		{"bare number yaml", "open_timeout: 5"},
		{"garbage", "open_timeout: soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b resilience.BreakerPolicy
			if err := yaml.Unmarshal([]byte(tt.give), &b); err == nil {
				t.Fatalf("accepted %q as %v", tt.give, b.OpenTimeout)
			}
		})
	}
	var d resilience.Duration
	if err := json.Unmarshal([]byte(`5`), &d); err == nil {
		t.Fatal("json accepted a bare number")
	}
	if err := json.Unmarshal([]byte(`0`), &d); err != nil || d != 0 {
		t.Fatalf("json 0: %v", err)
	}
}

func TestPresets(t *testing.T) {
	names := resilience.PresetNames()
	if strings.Join(names, ",") != "api,database,development,long-running,production" {
		t.Fatalf("names %v", names)
	}
	for _, n := range names {
		p, err := resilience.Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if p != p.WithDefaults() {
			t.Errorf("%s: preset has unfilled defaults", n)
		}
	}
	if _, err := resilience.Preset("chaos-monkey"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	api := resilience.ForAPI("openai")
	if pol := api.Policy(); pol.Retry.MaxAttempts != 5 || pol.Breaker.SuccessThreshold != 2 || pol.Retry.JitterFactor != 0.1 {
		t.Fatalf("api preset %+v", pol)
	}
	if db := resilience.ForDatabase("pg"); db.Name() != "pg" || db.Policy().Retry.Jitter != resilience.JitterDecorrelated {
		t.Fatalf("database preset %+v", db.Policy())
	}
	if _, err := resilience.Custom("x", resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: -1}}); err == nil {
		t.Fatal("Custom accepted an invalid policy")
	}
}

func TestRegistry(t *testing.T) {
	r := resilience.NewRegistry()
	a, err := r.GetOrCreate("b-api", noRetry(resilience.BreakerPolicy{FailureThreshold: 1}))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := r.GetOrCreate("b-api", resilience.Policy{})
	if a != again {
		t.Fatal("GetOrCreate made a second executor")
	}
	if _, err := r.GetOrCreate("bad", resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: -1}}); err == nil {
		t.Fatal("invalid policy accepted")
	}
	if err := r.Update("a-db", resilience.Policy{}); err != nil {
		t.Fatal(err)
	}
	_ = a.Do(t.Context(), fail)
	if err := r.Update("b-api", noRetry(resilience.BreakerPolicy{FailureThreshold: 9})); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if len(st) != 2 || st["b-api"].State != resilience.Open || st["b-api"].Failures != 1 || st["a-db"].Calls != 0 {
		t.Fatalf("stats %+v", st)
	}
	if strings.Join(r.Names(), ",") != "a-db,b-api" {
		t.Fatalf("names %v", r.Names())
	}
	if e, ok := r.Get("b-api"); !ok || e.Policy().Breaker.FailureThreshold != 9 {
		t.Fatal("update lost")
	}
	if !r.Remove("a-db") || r.Remove("a-db") {
		t.Fatal("remove")
	}
	b, _ := json.Marshal(st["b-api"])
	if !strings.Contains(string(b), `"state":"open"`) {
		t.Fatalf("stats json %s", b)
	}
	if err := r.Update("c", resilience.Policy{Chaos: resilience.Chaos{ErrorRate: 2}}); err == nil {
		t.Fatal("invalid update accepted")
	}
}
