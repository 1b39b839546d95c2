package fuel

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformed wraps every error caused by input that is not a
	// well-formed Wasm binary (truncated sections, bad encodings, counts
	// that do not match).
	ErrMalformed = errors.New("fuel: malformed module")

	// ErrInstrumented is returned by Instrument for a module that already
	// imports the fuel host function: metering it twice would charge twice.
	ErrInstrumented = errors.New("fuel: module is already instrumented")

	// ErrBudgetExhausted is the error a guest traps with when its call has
	// used up its CPU budget.
	ErrBudgetExhausted = errors.New("fuel: cpu budget exhausted")

	// ErrStackExhausted is the error a guest traps with when a call would
	// take its call stack past the bound set by Options.MaxStack.
	ErrStackExhausted = errors.New("fuel: stack overflow: call stack over its bound")
)

// UnsupportedError reports a well-formed module that uses something the
// rewriter does not meter, such as an instruction from a proposal that is not
// enabled by default in wazero (threads, exception handling, typed function
// references, multiple memories). Such a module is refused, never passed
// through unmetered.
type UnsupportedError struct {
	// Func is the index (in the input module's function index space) of the
	// function whose body holds the construct, or -1 outside code.
	Func int
	// Offset is the byte offset in the input module, or -1 if unknown.
	Offset int
	// What names the construct, e.g. "opcode 0xfe (threads)".
	What string
}

func (e *UnsupportedError) Error() string {
	if e.Func >= 0 {
		return fmt.Sprintf("fuel: unsupported %s in function %d at offset %#x", e.What, e.Func, e.Offset)
	}
	if e.Offset >= 0 {
		return fmt.Sprintf("fuel: unsupported %s at offset %#x", e.What, e.Offset)
	}
	return "fuel: unsupported " + e.What
}
