package resilience

import (
	"context"
	"errors"
	"strconv"

	"github.com/eapache/go-resiliency/retrier"
)

// Class says how the executor treats a failed attempt.
type Class int

const (
	// Retryable errors are retried and count against the breaker.
	Retryable Class = iota
	// Permanent errors (bad input) are never retried and never count
	// against the breaker.
	Permanent
	// Fatal errors are not retried but count against the breaker (a memory
	// cap hit, for instance).
	Fatal
	// Ignored errors are the caller's own doing (its cancellation): not
	// retried, not counted.
	Ignored
)

var classNames = [...]string{"retryable", "permanent", "fatal", "ignored"}

func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// retried reports whether the class is retried.
func (c Class) retried() bool { return c == Retryable }

// counts reports whether the class counts as a breaker failure.
func (c Class) counts() bool { return c == Retryable || c == Fatal }

// Classifier maps a non-nil attempt error to a Class. It must be safe for
// concurrent use. The executor classifies two cases itself before asking
// it: an error while the caller's context is done is Ignored, and an
// attempt cut by AttemptTimeout is Retryable.
type Classifier func(error) Class

// DefaultClassifier: context.Canceled is Ignored; errors wrapping
// ErrPermanent or implementing interface{ Permanent() bool } (returning
// true) are Permanent; everything else is Retryable.
func DefaultClassifier(err error) Class {
	if errors.Is(err, context.Canceled) {
		return Ignored
	}
	if errors.Is(err, ErrPermanent) {
		return Permanent
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return Permanent
	}
	return Retryable
}

// FromRetrierClassifier adapts a go-resiliency retrier.Classifier (such as
// retrier.WhitelistClassifier, a list of retryable errors): Retry
// becomes Retryable, Fail becomes Permanent, and Succeed (an error the
// classifier accepts as success) becomes Ignored. The caller's own
// cancellation stays Ignored.
func FromRetrierClassifier(c retrier.Classifier) Classifier {
	return func(err error) Class {
		if errors.Is(err, context.Canceled) {
			return Ignored
		}
		switch c.Classify(err) {
		case retrier.Retry:
			return Retryable
		case retrier.Fail:
			return Permanent
		default:
			return Ignored
		}
	}
}
