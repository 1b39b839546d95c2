package abi

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the version of the bulkhead host–guest contract. It changes
// whenever a name, a signature, a code or a JSON shape in this package changes.
const Version = "1"

// Import modules a guest may use.
const (
	// ExtismModule is the import module of the Extism kernel and host
	// functions. Plugins built with upstream Extism PDKs only use this one.
	ExtismModule = "extism:host/env"
	// HostModule is the import module of bulkhead's own host functions.
	HostModule = "bulkhead:host/v1"
)

// Exports the host looks for in a module.
const (
	// ExportRun is the function called when a node or a call names none.
	ExportRun = "run"
	// ExportDescribe, when present, returns a JSON Description.
	ExportDescribe = "describe"
	// ExportHealth, when present, is called by the health monitor; a zero
	// return code means healthy.
	ExportHealth = "health"
)

// Host functions of HostModule. Every handle is an Extism memory offset (i64);
// 0 means "none". A handle the host cannot resolve traps the calling export.
const (
	// FuncInvocation: invocation() -> i64. Returns a handle to the JSON
	// Invocation of the current call.
	FuncInvocation = "invocation"
	// FuncRetryAfter: retry_after(ms i64). Hints the delay before the next
	// attempt of the current call, for example after an HTTP 429.
	FuncRetryAfter = "retry_after"
	// FuncCheckpointSave: checkpoint_save(h i64) -> i32. Stores the bytes at
	// handle h as the newest checkpoint of this run and node. Returns 0 once
	// they are durable, non-zero (a Code) otherwise.
	FuncCheckpointSave = "checkpoint_save"
	// FuncCheckpointLoad: checkpoint_load() -> i64. Returns a handle to the
	// newest checkpoint of this run and node, or 0 when there is none.
	FuncCheckpointLoad = "checkpoint_load"
	// FuncStateGet: state_get(key i64) -> i64. Returns a handle to the value
	// of key in the plugin's durable key-value state, or 0 when unset.
	FuncStateGet = "state_get"
	// FuncStateSet: state_set(key i64, value i64) -> i32. Returns 0 on success.
	FuncStateSet = "state_set"
	// FuncStateDelete: state_delete(key i64) -> i32. Returns 0 on success,
	// also when the key was unset.
	FuncStateDelete = "state_delete"
	// FuncProgress: progress(h i64). Reports JSON Progress for this node.
	FuncProgress = "progress"

	// Bulk transfer: one call moves a whole payload between the Extism
	// memory and the guest's own linear memory (addresses are the guest's
	// memory offsets). An address range outside the guest's memory traps.

	// FuncInputRead: input_read(dst i64) -> i64. Copies the call's whole
	// input to guest address dst and returns its length.
	FuncInputRead = "input_read"
	// FuncBlockRead: block_read(h i64, dst i64) -> i64. Copies the whole
	// block at handle h to guest address dst and returns its length (0 for
	// handle 0 or a handle that names no block).
	FuncBlockRead = "block_read"
	// FuncBlockWrite: block_write(src i64, n i64) -> i64. Allocates a block
	// holding the n bytes at guest address src and returns its handle (0
	// when n is 0 or the memory cap leaves no room).
	FuncBlockWrite = "block_write"
)

// ValueType is a Wasm value type in a host function signature.
type ValueType string

// Value types used by the ABI.
const (
	I32 ValueType = "i32"
	I64 ValueType = "i64"
)

// HostFunction describes one function of HostModule.
type HostFunction struct {
	Name    string
	Params  []ValueType
	Results []ValueType
	Doc     string
}

// HostFunctions returns the functions of HostModule, in a stable order. The
// SDK constants are generated from this list.
func HostFunctions() []HostFunction {
	return []HostFunction{
		{FuncInvocation, nil, []ValueType{I64}, "handle to the JSON invocation info of this call"},
		{FuncRetryAfter, []ValueType{I64}, nil, "hint the delay in milliseconds before the next attempt"},
		{FuncCheckpointSave, []ValueType{I64}, []ValueType{I32}, "durably save the bytes at the handle as this node's newest checkpoint"},
		{FuncCheckpointLoad, nil, []ValueType{I64}, "handle to this node's newest checkpoint, or 0"},
		{FuncStateGet, []ValueType{I64}, []ValueType{I64}, "handle to the value of a key of the plugin's durable state, or 0"},
		{FuncStateSet, []ValueType{I64, I64}, []ValueType{I32}, "set a key of the plugin's durable state"},
		{FuncStateDelete, []ValueType{I64}, []ValueType{I32}, "delete a key of the plugin's durable state"},
		{FuncProgress, []ValueType{I64}, nil, "report JSON progress {done,total,message} of this node"},
		{FuncInputRead, []ValueType{I64}, []ValueType{I64}, "copy the call's whole input to a guest address; returns its length"},
		{FuncBlockRead, []ValueType{I64, I64}, []ValueType{I64}, "copy the whole block at the handle to a guest address; returns its length"},
		{FuncBlockWrite, []ValueType{I64, I64}, []ValueType{I64}, "allocate a block holding n bytes at a guest address; returns its handle or 0"},
	}
}

// ExtismFunctions returns the names of the functions of ExtismModule that
// bulkhead supports (all of those the Extism kernel and host provide).
func ExtismFunctions() []string {
	return []string{
		"alloc", "free", "length", "length_unsafe",
		"load_u8", "load_u64", "store_u8", "store_u64",
		"input_length", "input_load_u8", "input_load_u64", "input_offset",
		"output_set", "error_set", "error_get",
		"config_get", "var_get", "var_set",
		"http_request", "http_status_code", "http_headers",
		"log_trace", "log_debug", "log_info", "log_warn", "log_error", "get_log_level",
	}
}

// Code is the return code of an exported function.
type Code int32

// Return codes. Any code other than CodeOK and CodePermanent is a retryable
// failure; CodeRetryable is the one SDKs use.
const (
	CodeOK        Code = 0
	CodeRetryable Code = 1
	CodePermanent Code = 2
)

// Result codes of the host functions that return an i32 (checkpoint_save,
// state_set, state_delete). HostQuota came after the others: a guest built
// before it sees a non-zero code, as for any failure.
const (
	HostOK          int32 = 0 // done (for checkpoint_save: durable)
	HostFailed      int32 = 1 // the store failed; the call may retry
	HostUnavailable int32 = 3 // no durable store in this call (bulkhead call)
	HostTooLarge    int32 = 4 // over the host's size limit (see the Default* limits)
	HostQuota       int32 = 5 // the plugin's state quota (keys or bytes) is used up
)

// Retryable reports whether a failure with code c may succeed on another attempt.
func (c Code) Retryable() bool { return c != CodeOK && c != CodePermanent }

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodePermanent:
		return "permanent failure"
	default:
		return fmt.Sprintf("retryable failure (code %d)", int32(c))
	}
}

// Invocation is what a guest learns from FuncInvocation. For a call outside a
// workflow run (bulkhead call, the HTTP call endpoint) the run fields are empty.
type Invocation struct {
	RunID          string `json:"run_id"`
	Workflow       string `json:"workflow"`
	Node           string `json:"node"`
	Attempt        int    `json:"attempt"` // counts from 1
	IdempotencyKey string `json:"idempotency_key"`
	DeadlineUnixMS int64  `json:"deadline_unix_ms"` // 0 when the call has no deadline
	Plugin         string `json:"plugin"`
	PluginVersion  string `json:"plugin_version"`
}

// IdempotencyKey returns the key every attempt of a node in a run shares.
func IdempotencyKey(runID, node string) string {
	if runID == "" {
		return ""
	}
	return runID + "/" + node
}

// Progress is the JSON a guest passes to FuncProgress.
type Progress struct {
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Message string `json:"message,omitempty"`
}

// Description is the JSON an ExportDescribe function returns. All fields are
// optional.
type Description struct {
	Name        string   `json:"name,omitempty"`
	Version     string   `json:"version,omitempty"`
	Summary     string   `json:"summary,omitempty"`
	Functions   []string `json:"functions,omitempty"`
	InputType   string   `json:"input_type,omitempty"`
	OutputType  string   `json:"output_type,omitempty"`
	Idempotent  bool     `json:"idempotent,omitempty"`
	Checkpoints bool     `json:"checkpoints,omitempty"`
}

// DecodeProgress parses the JSON of FuncProgress. Done and Total must not be
// negative.
func DecodeProgress(b []byte) (Progress, error) {
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return Progress{}, fmt.Errorf("abi: progress: %w", err)
	}
	if p.Done < 0 || p.Total < 0 {
		return Progress{}, fmt.Errorf("abi: progress: negative count (done %d, total %d)", p.Done, p.Total)
	}
	return p, nil
}

// DecodeInvocation parses the JSON of FuncInvocation.
func DecodeInvocation(b []byte) (Invocation, error) {
	var inv Invocation
	if err := json.Unmarshal(b, &inv); err != nil {
		return Invocation{}, fmt.Errorf("abi: invocation: %w", err)
	}
	return inv, nil
}

// ConfigCheckpointInterval is the config key the host sets for every plugin
// (unless its manifest does): how often, as a duration such as "10s", a
// node's SDK saves an automatic checkpoint at most (the Go SDK's
// NewAutoCheckpointer).
const ConfigCheckpointInterval = "bulkhead.checkpoint_interval"

// DefaultCheckpointInterval is the host's value of ConfigCheckpointInterval.
const DefaultCheckpointInterval = 10 * time.Second

// Call stack bound (Manifest.MaxStack).
const (
	DefaultMaxStackBytes = 4 << 20 // call stack of one call
	MaxStackLimit        = 1 << 30 // largest max_stack a manifest may set
)

// Default limits. A manifest or policy may change each of them.
const (
	DefaultMemoryBytes     = 64 << 20 // linear memory of one instance
	DefaultMaxInputBytes   = 16 << 20
	DefaultMaxOutputBytes  = 16 << 20
	DefaultMaxLogLineBytes = 8 << 10
	DefaultMaxCheckpoint   = 4 << 20
	DefaultMaxStateKey     = 1 << 10
	DefaultMaxStateValue   = 1 << 20
	DefaultMaxProgress     = 4 << 10
	DefaultMaxErrorBytes   = 64 << 10
	// DefaultStateKeys and DefaultStateBytes are the quota of one plugin's
	// durable state: keys, and bytes of keys plus values.
	DefaultStateKeys  = 10000
	DefaultStateBytes = 64 << 20
	// DefaultLogLinesPerSecond and DefaultLogBytesPerSecond are the rate of
	// guest log lines one plugin may write.
	DefaultLogLinesPerSecond = 100
	DefaultLogBytesPerSecond = 256 << 10
)

// MaxCheckpointLimit is the largest max_checkpoint a manifest may set.
const MaxCheckpointLimit = 256 << 20
