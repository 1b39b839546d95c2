package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func ExampleExecute() {
	p := resilience.Policy{
		Retry: resilience.RetryPolicy{MaxAttempts: 3, InitialDelay: resilience.Duration(time.Millisecond), Jitter: resilience.JitterNone},
	}
	e, err := resilience.New("flaky-api", p)
	if err != nil {
		panic(err)
	}
	calls := 0
	out, err := resilience.Execute(context.Background(), e, func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", fmt.Errorf("attempt %d: 503", resilience.AttemptFromContext(ctx))
		}
		return "ok", nil
	})
	fmt.Println(out, err, calls)
	s := e.Stats()
	fmt.Println(s.Attempts, s.Retries, s.State)
	// Output:
	// ok <nil> 3
	// 3 2 closed
}

func ExampleExhaustedError() {
	e, _ := resilience.New("db", resilience.Policy{
		Retry: resilience.RetryPolicy{MaxAttempts: 2, InitialDelay: resilience.Duration(time.Millisecond)},
	})
	errDown := errors.New("connection refused")
	err := e.Do(context.Background(), func(ctx context.Context) error {
		return fmt.Errorf("attempt %d: %w", resilience.AttemptFromContext(ctx), errDown)
	})
	var ex *resilience.ExhaustedError
	if errors.As(err, &ex) {
		for _, e := range ex.Errors { // every attempt's error, for a dead letter
			fmt.Println(e)
		}
	}
	fmt.Println(errors.Is(err, errDown))
	// Output:
	// attempt 1: connection refused
	// attempt 2: connection refused
	// true
}

func ExampleMarkPermanent() {
	e := resilience.ForAPI("search")
	calls := 0
	err := e.Do(context.Background(), func(context.Context) error {
		calls++
		return resilience.MarkPermanent(errors.New("400 bad request"))
	})
	fmt.Println(calls, err, e.State())
	// Output:
	// 1 resilience: 1 attempt: 400 bad request closed
}

func ExamplePreset() {
	p, _ := resilience.Preset(resilience.PresetDatabase)
	fmt.Println(p.Retry.MaxAttempts, p.Retry.Jitter, p.Breaker.OpenTimeout, p.AttemptTimeout)
	fmt.Println(resilience.PresetNames())
	// Output:
	// 3 decorrelated 10s 5s
	// [api database development long-running production]
}
