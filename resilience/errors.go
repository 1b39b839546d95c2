package resilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrCircuitOpen is returned when the breaker rejects a call: it is open,
	// or half-open with every probe slot taken. The function was not called.
	ErrCircuitOpen = errors.New("resilience: circuit open")
	// ErrLimited is returned when no concurrency slot freed up within the
	// limiter's MaxQueueWait. The function was not called.
	ErrLimited = errors.New("resilience: concurrency limit reached")
	// ErrRetryBudget is the Cause of an *ExhaustedError when the retry budget
	// refused a retry.
	ErrRetryBudget = errors.New("resilience: retry budget exhausted")
	// ErrPermanent marks an error as permanent: never retried, never counted
	// against the breaker. Wrap it (fmt.Errorf("bad input: %w", ErrPermanent))
	// or use MarkPermanent.
	ErrPermanent = errors.New("resilience: permanent error")
	// ErrTotalDeadline is the Cause of an *ExhaustedError when the next retry
	// or breaker wait would end after the policy's TotalDeadline.
	ErrTotalDeadline = errors.New("resilience: total deadline exceeded")
	// ErrAttemptTimeout wraps the error of an attempt cut by AttemptTimeout.
	// errors.Is(err, context.DeadlineExceeded) is true for it as well.
	ErrAttemptTimeout error = attemptTimeoutError{}
)

type attemptTimeoutError struct{}

func (attemptTimeoutError) Error() string { return "resilience: attempt timeout" }

// Is makes an attempt timeout match context.DeadlineExceeded.
func (attemptTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// MarkPermanent wraps err so that the default classifier treats it as
// Permanent. MarkPermanent(nil) is nil.
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// ExhaustedError is returned by Do and Execute when at least one attempt ran
// and the call still failed: attempts ran out, a non-retryable error ended
// the loop, or something stopped further retries (see Cause).
//
// errors.Is and errors.As see the last attempt's error and Cause.
type ExhaustedError struct {
	// Attempts is the number of attempts that ran (the function was entered,
	// or the limiter refused a slot).
	Attempts int
	// Errors holds every attempt's error, oldest first; len(Errors) == Attempts.
	Errors []error
	// Cause says why retrying stopped before the attempts ran out:
	// ErrRetryBudget, ErrTotalDeadline, ErrCircuitOpen (the breaker stayed
	// open past the deadline) or the caller's context error (the caller
	// cancelled or its deadline passed). It is nil when the attempts ran
	// out or the last error was not retryable.
	Cause error
}

// Last returns the last attempt's error.
func (e *ExhaustedError) Last() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return e.Errors[len(e.Errors)-1]
}

func (e *ExhaustedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resilience: %d attempt", e.Attempts)
	if e.Attempts != 1 {
		b.WriteByte('s')
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, " (stopped: %v)", e.Cause)
	}
	if last := e.Last(); last != nil {
		fmt.Fprintf(&b, ": %v", last)
	}
	return b.String()
}

// Unwrap returns the last attempt's error and Cause (when set).
func (e *ExhaustedError) Unwrap() []error {
	out := make([]error, 0, 2)
	if last := e.Last(); last != nil {
		out = append(out, last)
	}
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	return out
}

// Chaos kinds.
const (
	ChaosKindError = "error"
	ChaosKindTrap  = "trap"
)

// ChaosError is the error a policy's chaos section injects. Kind is
// ChaosKindError or ChaosKindTrap. The default classifier retries it.
type ChaosError struct {
	Kind    string
	Attempt int
}

func (e *ChaosError) Error() string {
	return fmt.Sprintf("resilience: chaos: injected %s (attempt %d)", e.Kind, e.Attempt)
}

// retryAfterError carries a retry-after hint; see RetryAfter.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// RetryAfter wraps err with a hint: the next attempt waits d instead of the
// computed backoff (capped by the policy's MaxDelay). Any error in the chain
// implementing interface{ RetryAfter() time.Duration } has the same effect.
// RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: d}
}
