package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
)

// Sentinels matched with errors.Is. A *GuestError matches the one of its Kind.
var (
	// ErrTimeout: the call reached its deadline and the guest was stopped.
	// A *GuestError of this kind also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("host: call timed out")
	// ErrMemoryLimit: the guest hit its memory cap.
	ErrMemoryLimit = errors.New("host: memory limit exceeded")
	// ErrTrap: the guest trapped (panic, unreachable, stack overflow, bad
	// handle) or exited.
	ErrTrap = errors.New("host: guest trapped")
	// ErrPermanent: the guest returned the permanent failure code; another
	// attempt will not help.
	ErrPermanent = errors.New("host: permanent failure")
	// ErrFailed: the guest returned a retryable failure code.
	ErrFailed = errors.New("host: guest failed")
	// ErrCPUBudget: the call used up its CPU budget (the manifest's
	// cpu_budget, in fuel units of about one Wasm instruction).
	ErrCPUBudget = errors.New("host: CPU budget exhausted")
	// ErrLimit: an input, output or other size limit was exceeded.
	ErrLimit = errors.New("host: limit exceeded")
	// ErrNoPlugin: no plugin of that name is loaded.
	ErrNoPlugin = errors.New("host: no such plugin")
	// ErrNoExport: the module does not export the requested function.
	ErrNoExport = errors.New("host: no such export")
	// ErrInvalidModule: the bytes are not a module the host can load.
	ErrInvalidModule = errors.New("host: invalid module")
	// ErrClosed: the host is stopping or stopped.
	ErrClosed = errors.New("host: closed")
)

// Kind says how a guest call failed.
type Kind int

// Failure kinds.
const (
	KindFailed    Kind = iota + 1 // retryable failure code
	KindPermanent                 // permanent failure code
	KindTrap                      // trap or exit
	KindTimeout                   // deadline reached
	KindMemory                    // memory cap hit
	KindLimit                     // output or log size limit
	KindCanceled                  // the caller cancelled
	KindCPU                       // CPU budget used up
)

var kindNames = map[Kind]string{
	KindFailed: "failed", KindPermanent: "permanent", KindTrap: "trap",
	KindTimeout: "timeout", KindMemory: "memory", KindLimit: "limit", KindCanceled: "canceled", KindCPU: "cpu",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// GuestError is a failed call of a guest export.
type GuestError struct {
	Plugin  string
	Version string
	Export  string
	Kind    Kind
	// Code is the export's return code (the exit code for an exit).
	Code abi.Code
	// Msg is what the guest set with error_set, or the host's description.
	Msg string
	// Hint is the delay the guest asked for with retry_after, or 0.
	// Invoke turns it into the delay before the next attempt.
	Hint time.Duration
	// Err is the underlying cause, if any.
	Err error
}

func (e *GuestError) Error() string {
	var what string
	switch e.Kind {
	case KindTimeout:
		what = "timed out"
	case KindMemory:
		what = "hit its memory limit"
	case KindTrap:
		what = "trapped"
	case KindPermanent:
		what = "failed permanently"
	case KindCanceled:
		what = "was cancelled"
	case KindLimit:
		what = "exceeded a limit"
	case KindCPU:
		what = "ran out of CPU budget"
	default:
		what = "failed"
	}
	s := fmt.Sprintf("plugin %s: function %q %s", e.Plugin, e.Export, what)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap returns the cause.
func (e *GuestError) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's Kind, and context.DeadlineExceeded
// for a timeout.
func (e *GuestError) Is(target error) bool {
	switch target {
	case ErrTimeout, context.DeadlineExceeded:
		return e.Kind == KindTimeout
	case ErrMemoryLimit:
		return e.Kind == KindMemory
	case ErrTrap:
		return e.Kind == KindTrap
	case ErrPermanent:
		return e.Kind == KindPermanent
	case ErrFailed:
		return e.Kind == KindFailed
	case ErrLimit:
		return e.Kind == KindLimit
	case ErrCPUBudget:
		return e.Kind == KindCPU
	case context.Canceled:
		return e.Kind == KindCanceled
	}
	return false
}

// Permanent reports whether another attempt cannot help: the guest said so.
func (e *GuestError) Permanent() bool { return e.Kind == KindPermanent }

// LimitError is a size limit exceeded by the caller or the guest.
type LimitError struct {
	Plugin string
	Limit  string // "max_input", "max_output", ...
	Size   int64
	Max    int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("plugin %s: %s exceeded: %s is over the %s limit", e.Plugin, e.Limit, abi.Size(e.Size), abi.Size(e.Max))
}

// Is matches ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Permanent: the same input exceeds the same limit on every attempt.
func (e *LimitError) Permanent() bool { return true }

// LoadError says why a module could not be loaded.
type LoadError struct {
	Plugin string
	Err    error
}

func (e *LoadError) Error() string { return fmt.Sprintf("plugin %s: %v", e.Plugin, e.Err) }

// Unwrap returns the cause.
func (e *LoadError) Unwrap() error { return e.Err }

// Is matches ErrInvalidModule.
func (e *LoadError) Is(target error) bool { return target == ErrInvalidModule }
