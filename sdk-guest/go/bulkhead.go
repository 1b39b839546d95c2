//go:build wasip1

package bulkhead

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrPermanent marks a failure that another attempt cannot fix, such as bad
// input. Wrap it (or use Permanent) and the host never retries the call.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that the host treats it as a permanent failure.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// Handle reads the input, runs fn and sets the output or the error. It
// returns the code the export must return.
func Handle(fn func(input []byte) ([]byte, error)) int32 {
	out, err := fn(Input())
	if err != nil {
		return Fail(err)
	}
	Output(out)
	return codeOK
}

// HandleJSON decodes the input as JSON into In, runs fn and encodes its
// result as the output. Input that does not decode is a permanent failure.
func HandleJSON[In, Out any](fn func(In) (Out, error)) int32 {
	var in In
	if err := json.Unmarshal(Input(), &in); err != nil {
		return Fail(Permanent(fmt.Errorf("decode input: %w", err)))
	}
	out, err := fn(in)
	if err != nil {
		return Fail(err)
	}
	if err := OutputJSON(out); err != nil {
		return Fail(err)
	}
	return codeOK
}

// Fail sets err as the call's error and returns the matching code.
func Fail(err error) int32 {
	extismErrorSet(writeString(err.Error()))
	if errors.Is(err, ErrPermanent) {
		return codePermanent
	}
	return codeRetryable
}

// Input returns the call's input.
func Input() []byte { return readInput() }

// InputString returns the call's input as a string.
func InputString() string { return string(readInput()) }

// InputJSON decodes the call's input into v.
func InputJSON(v any) error { return json.Unmarshal(readInput(), v) }

// Output sets the call's output.
func Output(b []byte) { extismOutputSet(writeBlock(b), uint64(len(b))) }

// OutputString sets the call's output.
func OutputString(s string) { Output([]byte(s)) }

// OutputJSON encodes v as the call's output.
func OutputJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	Output(b)
	return nil
}

// Config returns the value of a config key, and whether it is set.
func Config(key string) (string, bool) {
	k := writeString(key)
	defer extismFree(k)
	h := extismConfigGet(k)
	if h == 0 {
		return "", false
	}
	defer extismFree(h)
	return string(readBlock(h)), true
}

// Var returns a variable of this instance, or nil when unset. Vars live as
// long as the instance: use plugin state for anything that must survive.
//
// The host frees the blocks it is handed by var_get, var_set and log_*
// (the Extism convention); the SDK frees every other block it allocates.
func Var(key string) []byte {
	h := extismVarGet(writeString(key))
	if h == 0 {
		return nil
	}
	defer extismFree(h)
	return readBlock(h)
}

// SetVar sets a variable of this instance; a nil value deletes it.
func SetVar(key string, value []byte) {
	k := writeString(key)
	if value == nil {
		extismVarSet(k, 0)
		return
	}
	extismVarSet(k, writeBlock(value))
}

// Level is a log level.
type Level int

// Log levels.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes msg to the host's logger at level.
func Log(level Level, msg string) {
	h := writeString(msg)
	switch level {
	case LevelTrace:
		extismLogTrace(h)
	case LevelDebug:
		extismLogDebug(h)
	case LevelWarn:
		extismLogWarn(h)
	case LevelError:
		extismLogError(h)
	default:
		extismLogInfo(h)
	}
}

// Logf formats and writes a log line at level.
func Logf(level Level, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }

// Invocation returns what the host says about the current call: run,
// workflow, node, attempt, idempotency key, deadline and plugin version.
func Invocation() (InvocationInfo, error) {
	h := hostInvocation()
	if h == 0 {
		return InvocationInfo{}, errors.New("no invocation info")
	}
	defer extismFree(h)
	var inv InvocationInfo
	if err := json.Unmarshal(readBlock(h), &inv); err != nil {
		return InvocationInfo{}, fmt.Errorf("invocation info: %w", err)
	}
	return inv, nil
}

// RetryAfter hints the host to wait d before the next attempt of this call.
func RetryAfter(d time.Duration) {
	if d < 0 {
		d = 0
	}
	hostRetryAfter(uint64(d / time.Millisecond))
}

// SaveCheckpoint durably stores b as this node's newest checkpoint. A later
// attempt of the same node in the same run reads it with LoadCheckpoint.
func SaveCheckpoint(b []byte) error {
	h := writeBlock(b)
	defer extismFree(h)
	if rc := hostCheckpointSave(h); rc != 0 {
		return fmt.Errorf("checkpoint of %d bytes not saved: %s", len(b), hostError(rc))
	}
	return nil
}

// LoadCheckpoint returns this node's newest checkpoint, or nil.
func LoadCheckpoint() []byte {
	h := hostCheckpointLoad()
	if h == 0 {
		return nil
	}
	defer extismFree(h)
	return readBlock(h)
}

// State returns the value of key in the plugin's durable state, or nil.
func State(key string) []byte {
	k := writeString(key)
	defer extismFree(k)
	h := hostStateGet(k)
	if h == 0 {
		return nil
	}
	defer extismFree(h)
	return readBlock(h)
}

// SetState durably sets key in the plugin's state.
func SetState(key string, value []byte) error {
	k := writeString(key)
	defer extismFree(k)
	v := writeBlock(value)
	defer extismFree(v)
	if rc := hostStateSet(k, v); rc != 0 {
		return fmt.Errorf("state %q not set: %s", key, hostError(rc))
	}
	return nil
}

// DeleteState deletes key from the plugin's state.
func DeleteState(key string) error {
	k := writeString(key)
	defer extismFree(k)
	if rc := hostStateDelete(k); rc != 0 {
		return fmt.Errorf("state %q not deleted: %s", key, hostError(rc))
	}
	return nil
}

// Progress reports how far this node is.
func Progress(done, total int64, message string) {
	b, _ := json.Marshal(progress{Done: done, Total: total, Message: message})
	h := writeBlock(b)
	defer extismFree(h)
	hostProgress(h)
}

// hostError describes a durable host function's result code.
func hostError(rc uint32) string {
	switch int32(rc) {
	case hostUnavailable:
		return "no durable store in this call"
	case hostTooLarge:
		return "over the host's size limit"
	case hostQuota:
		return "the plugin's state quota is used up"
	case hostFailed:
		return "the store failed"
	}
	return fmt.Sprintf("code %d", rc)
}
