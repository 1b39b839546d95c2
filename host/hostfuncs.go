package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/internal/quota"
	"github.com/bulkhead-run/bulkhead/host/internal/xabi"
)

// Durable is what a call's durable host functions (checkpoints, plugin
// state, progress) reach. The workflow engine supplies one per node attempt;
// a call without one sees checkpoint_save and state_set fail with a non-zero
// code and checkpoint_load and state_get return nothing.
type Durable interface {
	// SaveCheckpoint stores data as the node's newest checkpoint; it returns
	// once data is durable.
	SaveCheckpoint(ctx context.Context, data []byte) error
	// LoadCheckpoint returns the newest checkpoint, or nil when none.
	LoadCheckpoint(ctx context.Context) ([]byte, error)
	// StateGet returns the value of key in the plugin's state, or nil.
	StateGet(ctx context.Context, key string) ([]byte, error)
	StateSet(ctx context.Context, key string, value []byte) error
	StateDelete(ctx context.Context, key string) error
	// StateUsage returns how many keys the plugin's state holds and the
	// bytes of those keys and their values. The host calls it once per
	// plugin (and again after a failed write) and counts on from there,
	// so every Durable it is given for one plugin must reach one state.
	StateUsage(ctx context.Context) (keys, bytes int64, err error)
	// Progress records the node's progress.
	Progress(ctx context.Context, p abi.Progress)
}

// CallOption configures one Call.
type CallOption func(*callOptions)

type callOptions struct {
	inv     abi.Invocation
	durable Durable
	logger  *slog.Logger
	version string
	stats   *CallStats
	// deadline, when set, is the attempt's deadline (see Invoke): the call
	// ends at it if that is before the plugin's timeout.
	deadline time.Time
	// fuel is set to the fuel the call used when it returns.
	fuel int64
}

// CallStats reports on one call.
type CallStats struct {
	Version  string
	Duration time.Duration
	// Fuel is the CPU the call used, in units of about one Wasm
	// instruction (0 when the module is not metered).
	Fuel    int64
	Metered bool
}

// WithStats fills s when the call returns.
func WithStats(s *CallStats) CallOption { return func(o *callOptions) { o.stats = s } }

// WithInvocation sets what the guest learns from invocation(). The host
// fills in the plugin, its version and the deadline.
func WithInvocation(inv abi.Invocation) CallOption {
	return func(o *callOptions) { o.inv = inv }
}

// WithDurable connects the call's durable host functions to d.
func WithDurable(d Durable) CallOption { return func(o *callOptions) { o.durable = d } }

// WithCallLogger sends the call's guest log lines to l.
func WithCallLogger(l *slog.Logger) CallOption { return func(o *callOptions) { o.logger = l } }

// WithVersion requires the loaded version's hash to start with prefix.
func WithVersion(prefix string) CallOption { return func(o *callOptions) { o.version = prefix } }

// callState is the per-call state host functions see through the context.
type callState struct {
	host    *Host
	gen     *generation
	inv     abi.Invocation
	durable Durable
	logger  *slog.Logger
	hint    time.Duration
	start   time.Time
	ctx     *callCtx // the call's context
}

type callKey struct{}

func stateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callKey{}).(*callState)
	if st == nil {
		// Host functions only run inside Call; anything else is a bug the
		// guest must not be able to turn into a host crash.
		panic(fmt.Errorf("bulkhead host function called outside a call"))
	}
	return st
}

// Limits of durable host function payloads. A checkpoint's is the
// manifest's max_checkpoint.
const (
	maxStateKey   = abi.DefaultMaxStateKey
	maxStateValue = abi.DefaultMaxStateValue
	maxProgress   = abi.DefaultMaxProgress
)

// read resolves a guest handle or traps the call. A handle that names no
// block is a guest bug, never a host panic: the panic is recovered by the
// runtime and surfaces as a trap of this call only.
func read(m xabi.Memory, h uint64, what string, max int) []byte {
	b, err := m.Read(h)
	if err != nil {
		panic(fmt.Errorf("%s: bad handle: %w", what, err))
	}
	if len(b) > max {
		panic(fmt.Errorf("%s: %s is over the %s limit", what, abi.Size(len(b)), abi.Size(max)))
	}
	return b
}

func write(m xabi.Memory, b []byte, what string) uint64 {
	h, err := m.Write(b)
	if err != nil {
		panic(fmt.Errorf("%s: %w", what, err))
	}
	return h
}

// toGuest copies b to guest address dst in one bounds-checked copy, or
// traps the call.
func toGuest(m xabi.Memory, dst uint64, b []byte, what string) {
	if len(b) == 0 {
		return
	}
	g := m.Guest()
	if g == nil || dst > math.MaxUint32 || !g.Write(uint32(dst), b) {
		panic(fmt.Errorf("%s: %d bytes at %#x are outside the guest's memory", what, len(b), dst))
	}
}

// Result codes of the durable host functions that return one (see abi).
const (
	rcOK          = uint64(abi.HostOK)
	rcFailed      = uint64(abi.HostFailed)
	rcUnavailable = uint64(abi.HostUnavailable)
	rcTooLarge    = uint64(abi.HostTooLarge)
	rcQuota       = uint64(abi.HostQuota)
)

// readCapped resolves a guest handle for a function that reports errors
// with a result code: a bad handle still traps, a block over max is
// reported (rcTooLarge) and logged with the limit it broke.
func readCapped(ctx context.Context, m xabi.Memory, h uint64, what, limit string, max int) ([]byte, bool) {
	b, err := m.Read(h)
	if err != nil {
		panic(fmt.Errorf("%s: bad handle: %w", what, err))
	}
	if len(b) > max {
		stateFrom(ctx).warn(ctx, what+" refused", fmt.Errorf("%s is over the %s limit of %s", abi.Size(len(b)), limit, abi.Size(max)))
		return nil, false
	}
	return b, true
}

func hostFuncs() []xabi.HostFunc {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	mod := abi.HostModule
	return []xabi.HostFunc{
		{Module: mod, Name: abi.FuncInvocation, Results: []api.ValueType{i64},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				b, _ := json.Marshal(st.inv)
				stack[0] = write(m, b, abi.FuncInvocation)
			}},
		{Module: mod, Name: abi.FuncRetryAfter, Params: []api.ValueType{i64},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				ms := int64(stack[0])
				if ms < 0 {
					ms = 0
				}
				if ms > int64(24*time.Hour/time.Millisecond) {
					ms = int64(24 * time.Hour / time.Millisecond)
				}
				stateFrom(ctx).hint = time.Duration(ms) * time.Millisecond
			}},
		{Module: mod, Name: abi.FuncCheckpointSave, Params: []api.ValueType{i64}, Results: []api.ValueType{i32},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				data, ok := readCapped(ctx, m, stack[0], abi.FuncCheckpointSave, "max_checkpoint", st.gen.maxCheckpoint)
				if !ok {
					stack[0] = rcTooLarge
					return
				}
				stack[0] = rcUnavailable
				if st.durable == nil {
					return
				}
				if err := st.durable.SaveCheckpoint(ctx, data); err != nil {
					st.warn(ctx, "checkpoint not saved", err)
					stack[0] = rcFailed
					return
				}
				stack[0] = rcOK
			}},
		{Module: mod, Name: abi.FuncCheckpointLoad, Results: []api.ValueType{i64},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				stack[0] = 0
				if st.durable == nil {
					return
				}
				b, err := st.durable.LoadCheckpoint(ctx)
				if err != nil {
					panic(fmt.Errorf("checkpoint_load: %w", err))
				}
				if b != nil {
					stack[0] = write(m, b, abi.FuncCheckpointLoad)
				}
			}},
		{Module: mod, Name: abi.FuncStateGet, Params: []api.ValueType{i64}, Results: []api.ValueType{i64},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				key := read(m, stack[0], abi.FuncStateGet, maxStateKey)
				stack[0] = 0
				if st.durable == nil {
					return
				}
				b, err := st.durable.StateGet(ctx, string(key))
				if err != nil {
					panic(fmt.Errorf("state_get: %w", err))
				}
				if b != nil {
					stack[0] = write(m, b, abi.FuncStateGet)
				}
			}},
		{Module: mod, Name: abi.FuncStateSet, Params: []api.ValueType{i64, i64}, Results: []api.ValueType{i32},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				key, ok1 := readCapped(ctx, m, stack[0], abi.FuncStateSet, "state key", maxStateKey)
				val, ok2 := readCapped(ctx, m, stack[1], abi.FuncStateSet, "state value", maxStateValue)
				if !ok1 || !ok2 {
					stack[0] = rcTooLarge
					return
				}
				stack[0] = rcUnavailable
				if st.durable == nil {
					return
				}
				stack[0] = st.stateSet(ctx, string(key), val)
			}},
		{Module: mod, Name: abi.FuncStateDelete, Params: []api.ValueType{i64}, Results: []api.ValueType{i32},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				key, ok := readCapped(ctx, m, stack[0], abi.FuncStateDelete, "state key", maxStateKey)
				if !ok {
					stack[0] = rcTooLarge
					return
				}
				stack[0] = rcUnavailable
				if st.durable == nil {
					return
				}
				stack[0] = st.stateDelete(ctx, string(key))
			}},
		{Module: mod, Name: abi.FuncInputRead, Params: []api.ValueType{i64}, Results: []api.ValueType{i64},
			Call: func(_ context.Context, m xabi.Memory, stack []uint64) {
				in := m.Input()
				toGuest(m, stack[0], in, abi.FuncInputRead)
				stack[0] = uint64(len(in))
			}},
		{Module: mod, Name: abi.FuncBlockRead, Params: []api.ValueType{i64, i64}, Results: []api.ValueType{i64},
			Call: func(_ context.Context, m xabi.Memory, stack []uint64) {
				b := m.View(stack[0])
				toGuest(m, stack[1], b, abi.FuncBlockRead)
				stack[0] = uint64(len(b))
			}},
		{Module: mod, Name: abi.FuncBlockWrite, Params: []api.ValueType{i64, i64}, Results: []api.ValueType{i64},
			Call: func(_ context.Context, m xabi.Memory, stack []uint64) {
				src, n := stack[0], stack[1]
				stack[0] = 0
				if n == 0 {
					return
				}
				g := m.Guest()
				if g == nil || src > math.MaxUint32 || n > math.MaxUint32 {
					panic(fmt.Errorf("%s: %d bytes at %#x are outside the guest's memory", abi.FuncBlockWrite, n, src))
				}
				b, ok := g.Read(uint32(src), uint32(n))
				if !ok {
					panic(fmt.Errorf("%s: %d bytes at %#x are outside the guest's memory", abi.FuncBlockWrite, n, src))
				}
				h, dst := m.AllocView(n)
				if h != 0 {
					copy(dst, b)
				}
				stack[0] = h
			}},
		{Module: mod, Name: abi.FuncProgress, Params: []api.ValueType{i64},
			Call: func(ctx context.Context, m xabi.Memory, stack []uint64) {
				st := stateFrom(ctx)
				p, err := abi.DecodeProgress(read(m, stack[0], abi.FuncProgress, maxProgress))
				if err != nil {
					panic(err)
				}
				if st.durable != nil {
					st.durable.Progress(ctx, p)
				}
			}},
	}
}

// stateSet writes key under the plugin's state quota (see
// host/internal/quota): the key's current value is read under its lock, the
// growth is reserved, then written.
func (st *callState) stateSet(ctx context.Context, key string, val []byte) uint64 {
	acc := st.host.account(st.gen.plugin)
	unlock := acc.Lock(key)
	defer unlock()
	old, err := st.durable.StateGet(ctx, key)
	if err != nil {
		st.warn(ctx, "state not set", err)
		return rcFailed
	}
	d := quota.Delta(key, old, old != nil, val)
	if err := acc.Reserve(st.gen.stateLimits, d, st.stateUsage(ctx)); err != nil {
		st.warn(ctx, "state not set", err)
		if errors.As(err, new(*quota.Error)) {
			return rcQuota
		}
		return rcFailed
	}
	err = st.durable.StateSet(ctx, key, val)
	acc.Done(d, err == nil)
	if err != nil {
		st.warn(ctx, "state not set", err)
		return rcFailed
	}
	return rcOK
}

func (st *callState) stateDelete(ctx context.Context, key string) uint64 {
	acc := st.host.account(st.gen.plugin)
	unlock := acc.Lock(key)
	defer unlock()
	old, err := st.durable.StateGet(ctx, key)
	if err == nil {
		d := quota.DeleteDelta(key, old, old != nil)
		if err = acc.Reserve(st.gen.stateLimits, d, st.stateUsage(ctx)); err == nil {
			err = st.durable.StateDelete(ctx, key)
			acc.Done(d, err == nil)
		}
	}
	if err != nil {
		st.warn(ctx, "state not deleted", err)
		return rcFailed
	}
	return rcOK
}

func (st *callState) stateUsage(ctx context.Context) func() (quota.Usage, error) {
	return func() (quota.Usage, error) {
		k, b, err := st.durable.StateUsage(ctx)
		return quota.Usage{Keys: k, Bytes: b}, err
	}
}

// warn logs a failed host function call, at most warnsPerSecond lines a
// second per plugin version; the rest are counted in a summary line.
func (st *callState) warn(ctx context.Context, msg string, err error) {
	log := st.logger
	if log == nil {
		log = st.host.log
	}
	g := st.gen
	now := time.Now()
	if !g.warnLimit.Allow(now, 0) {
		return
	}
	g.summarize(ctx, log, now)
	log.WarnContext(ctx, msg, "plugin", g.plugin, "run_id", st.inv.RunID, "node", st.inv.Node, "err", err)
}
