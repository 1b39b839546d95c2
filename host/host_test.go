package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

var kitchenWasm []byte

func TestMain(m *testing.M) {
	var err error
	kitchenWasm, err = os.ReadFile("../testdata/go/kitchen/kitchen.wasm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fixture missing, run `make testdata`:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

func newHost(t *testing.T, opts ...host.Option) *host.Host {
	t.Helper()
	return hosttest.New(t, opts...)
}

func load(t *testing.T, h *host.Host, name string, m abi.Manifest) {
	t.Helper()
	if _, err := h.Load(context.Background(), name, kitchenWasm, m); err != nil {
		t.Fatal(err)
	}
}

func TestHost_Conformance(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	load(t, h, "kitchen", abi.Manifest{Config: map[string]string{"greeting": "hello"}, Pool: abi.Pool{Max: 1}})
	ctx := context.Background()
	call := func(fn string, in []byte, opts ...host.CallOption) ([]byte, error) {
		return h.Call(ctx, "kitchen", fn, in, opts...)
	}

	t.Run("echo", func(t *testing.T) {
		for _, n := range []int{0, 1, 1 << 10, 1 << 20} {
			in := make([]byte, n)
			for i := range in {
				in[i] = byte(i * 7) // binary, including zero bytes
			}
			out, err := call("echo", in)
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("echo of %d bytes: got %d bytes, %v", n, len(out), err)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, err := call("json", []byte(`{"a":40,"b":2}`))
		if err != nil || string(out) != `{"sum":42}` {
			t.Fatalf("json = %s, %v", out, err)
		}
		_, err = call("json", []byte(`not json`))
		if !errors.Is(err, host.ErrPermanent) {
			t.Fatalf("bad JSON input = %v, want permanent", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		out, err := call("config", []byte("greeting"))
		if err != nil || string(out) != "hello" {
			t.Fatalf("config = %q, %v", out, err)
		}
	})
	t.Run("vars persist on one instance", func(t *testing.T) {
		var last string
		for range 3 {
			out, err := call("var_incr", nil)
			if err != nil {
				t.Fatal(err)
			}
			last = string(out)
		}
		if last != "3" {
			t.Fatalf("var_incr after 3 calls = %s", last)
		}
	})
	t.Run("log", func(t *testing.T) {
		if _, err := call("log", []byte("conformance-log-line")); err != nil {
			t.Fatal(err)
		}
		got := rec.levels("conformance-log-line")
		want := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("log levels = %v, want %v", got, want)
		}
	})
	t.Run("retryable failure", func(t *testing.T) {
		_, err := call("fail", []byte("upstream said no"))
		var ge *host.GuestError
		if !errors.As(err, &ge) || ge.Kind != host.KindFailed || ge.Msg != "upstream said no" || ge.Permanent() {
			t.Fatalf("fail = %#v", err)
		}
	})
	t.Run("permanent failure", func(t *testing.T) {
		_, err := call("fail_permanent", []byte("bad input"))
		var ge *host.GuestError
		if !errors.As(err, &ge) || ge.Code != abi.CodePermanent || !ge.Permanent() || ge.Msg != "bad input" {
			t.Fatalf("fail_permanent = %#v", err)
		}
	})
	t.Run("trap", func(t *testing.T) {
		_, err := call("trap", nil)
		if !errors.Is(err, host.ErrTrap) || !strings.Contains(err.Error(), "deliberate trap") {
			t.Fatalf("trap = %v", err)
		}
	})
	t.Run("invocation", func(t *testing.T) {
		dl := time.Now().Add(5 * time.Second)
		cctx, cancel := context.WithDeadline(ctx, dl)
		defer cancel()
		out, err := h.Call(cctx, "kitchen", "invocation", nil, host.WithInvocation(abi.Invocation{
			RunID: "r1", Workflow: "wf", Node: "n", Attempt: 3, IdempotencyKey: abi.IdempotencyKey("r1", "n"),
		}))
		if err != nil {
			t.Fatal(err)
		}
		var inv abi.Invocation
		if err := json.Unmarshal(out, &inv); err != nil {
			t.Fatal(err)
		}
		want := abi.Invocation{RunID: "r1", Workflow: "wf", Node: "n", Attempt: 3, IdempotencyKey: "r1/n",
			DeadlineUnixMS: dl.UnixMilli(), Plugin: "kitchen", PluginVersion: host.Version(kitchenWasm)}
		if inv != want {
			t.Fatalf("invocation = %+v\nwant %+v", inv, want)
		}
	})
	t.Run("retry_after", func(t *testing.T) {
		_, err := call("retry_after", []byte("1500"))
		var ge *host.GuestError
		if !errors.As(err, &ge) || ge.Hint != 1500*time.Millisecond {
			t.Fatalf("retry_after = %#v", err)
		}
	})
	t.Run("real clock and randomness", func(t *testing.T) {
		out, err := call("sleep", []byte("30"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(string(out))
		if err != nil || d < 30*time.Millisecond {
			t.Fatalf("guest slept %q (%v); want ≥ 30ms of real time", out, err)
		}
		a, err1 := call("random", nil)
		b, err2 := call("random", nil)
		if err1 != nil || err2 != nil || bytes.Equal(a, b) {
			t.Fatalf("random: %x %x %v %v", a, b, err1, err2)
		}
	})
	t.Run("durable functions without a store", func(t *testing.T) {
		_, err := call("state", []byte("k"))
		if !errors.Is(err, host.ErrFailed) {
			t.Fatalf("state without a store = %v, want a retryable failure", err)
		}
	})
}

func TestHost_HostileGuestsAreContained(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{Memory: 48 << 20, MaxOutput: 8 << 20, Timeout: abi.Duration(20 * time.Second)})
	ctx := context.Background()
	tests := []struct {
		fn   string
		in   string
		want error
		kind host.Kind
	}{
		{fn: "trap", want: host.ErrTrap, kind: host.KindTrap},
		{fn: "spin", want: host.ErrTimeout, kind: host.KindTimeout},
		{fn: "membomb", want: host.ErrMemoryLimit, kind: host.KindMemory},
		{fn: "huge", in: "16", want: host.ErrLimit, kind: host.KindLimit},
		{fn: "exit", want: host.ErrTrap, kind: host.KindTrap},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			cctx := ctx
			if tt.fn == "spin" {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			_, err := h.Call(cctx, "kitchen", tt.fn, []byte(tt.in))
			var ge *host.GuestError
			if !errors.Is(err, tt.want) || !errors.As(err, &ge) || ge.Kind != tt.kind {
				t.Fatalf("%s = %v, want %v", tt.fn, err, tt.want)
			}
			// The host keeps serving.
			out, err := h.Call(ctx, "kitchen", "echo", []byte("still here"))
			if err != nil || string(out) != "still here" {
				t.Fatalf("echo after %s = %q, %v", tt.fn, out, err)
			}
		})
	}
	if !errors.Is(&host.GuestError{Kind: host.KindTimeout}, context.DeadlineExceeded) {
		t.Fatal("a timeout must match context.DeadlineExceeded")
	}
	info, _ := h.Plugin("kitchen")
	if info.Failures != uint64(len(tests)) {
		t.Fatalf("failures = %d, want %d", info.Failures, len(tests))
	}
}

func TestHost_GCCompletesWhileGuestSpins(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(ctx, "kitchen", "spin", nil)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the guest spin
	gcDone := make(chan struct{})
	go func() { runtime.GC(); close(gcDone) }()
	select {
	case <-gcDone:
	case <-time.After(5 * time.Second):
		t.Fatal("runtime.GC did not complete while a guest spun")
	}
	if err := <-done; !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("spin = %v, want timeout", err)
	}
}

func TestHost_BadModules(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{name: "empty", wasm: nil, want: "not a WebAssembly module"},
		{name: "not wasm", wasm: []byte("#!/bin/sh\necho hello\n"), want: "not a WebAssembly module"},
		{name: "truncated", wasm: kitchenWasm[:len(kitchenWasm)/2], want: "not a valid WebAssembly module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Load(ctx, "bad", tt.wasm, abi.Manifest{})
			if !errors.Is(err, host.ErrInvalidModule) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v; want ErrInvalidModule mentioning %q", err, tt.want)
			}
		})
	}
	load(t, h, "kitchen", abi.Manifest{})
	_, err := h.Call(ctx, "kitchen", "no_such_export", nil)
	if !errors.Is(err, host.ErrNoExport) {
		t.Fatalf("missing export = %v", err)
	}
	if _, err := h.Call(ctx, "nobody", "run", nil); !errors.Is(err, host.ErrNoPlugin) {
		t.Fatalf("unknown plugin = %v", err)
	}
}

func TestHost_InputLimit(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{MaxInput: 1024})
	_, err := h.Call(context.Background(), "kitchen", "echo", make([]byte, 1025))
	var le *host.LimitError
	if !errors.As(err, &le) || le.Limit != "max_input" || !errors.Is(err, host.ErrLimit) {
		t.Fatalf("oversized input = %v", err)
	}
}

// barrierLog is a call logger whose first record makes the call wait, inside
// the guest, until every call of its barrier is inside too.
type barrierLog struct {
	once sync.Once
	wait func()
}

func (b *barrierLog) Enabled(context.Context, slog.Level) bool { return true }
func (b *barrierLog) WithAttrs([]slog.Attr) slog.Handler       { return b }
func (b *barrierLog) WithGroup(string) slog.Handler            { return b }
func (b *barrierLog) Handle(context.Context, slog.Record) error {
	b.once.Do(b.wait)
	return nil
}

func TestHost_ConcurrentCallsHammer(t *testing.T) {
	const poolMax = 8
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{Pool: abi.Pool{Max: poolMax}})

	// poolMax calls meet inside the guest while the echo callers run, so
	// calls overlap however the goroutines are scheduled.
	var mu sync.Mutex
	arrived, all := 0, make(chan struct{})
	wait := func() {
		mu.Lock()
		if arrived++; arrived == poolMax {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			mu.Lock()
			t.Errorf("only %d of %d calls inside the guest at once", arrived, poolMax)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for range poolMax {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logger := slog.New(&barrierLog{wait: wait})
			if _, err := h.Call(context.Background(), "kitchen", "log", []byte("in"), host.WithCallLogger(logger)); err != nil {
				t.Error(err)
			}
		}()
	}
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				in := []byte(fmt.Sprintf("caller-%d-call-%d-%s", i, j, strings.Repeat("x", i*13)))
				out, err := h.Call(context.Background(), "kitchen", "echo", in)
				if err != nil || !bytes.Equal(out, in) {
					t.Errorf("caller %d got %q, %v", i, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if info, _ := h.Plugin("kitchen"); info.PoolIdle > poolMax || info.Calls != 64*5+poolMax {
		t.Fatalf("pool %+v", info)
	}
	if peak := host.PoolPeak(h, "kitchen"); peak > poolMax || peak <= 1 {
		t.Fatalf("peak %d instances in use, want 2..%d", peak, poolMax)
	}
}

func TestHost_StopRefusesCalls(t *testing.T) {
	h, err := host.New(host.WithCacheDir(hosttest.CacheDir()))
	if err != nil {
		t.Fatal(err)
	}
	load(t, h, "kitchen", abi.Manifest{})
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Call(context.Background(), "kitchen", "echo", nil); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("Call after Stop = %v", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal("second Stop:", err)
	}
}

// TestHost_HostileCallsDoNotAccumulate repeats hostile calls and checks that
// discarded instances are freed: the host's heap after a GC stays near where
// it started.
func TestHost_HostileCallsDoNotAccumulate(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{Memory: 40 << 20, Pool: abi.Pool{Max: 2}})
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h.Call(ctx, "kitchen", "echo", nil)
	before := heap()
	for i := range 40 {
		fn := []string{"trap", "exit", "membomb", "huge"}[i%4]
		if _, err := h.Call(ctx, "kitchen", fn, []byte("64")); err == nil {
			t.Fatalf("%s succeeded", fn)
		}
	}
	after := heap()
	if after > before+64<<20 {
		t.Fatalf("heap grew from %d MiB to %d MiB over 40 hostile calls", before>>20, after>>20)
	}
	if info, _ := h.Plugin("kitchen"); info.PoolIdle+info.PoolInUse > 2 {
		t.Fatalf("pool holds %d instances, max 2", info.PoolIdle+info.PoolInUse)
	}
}

// TestHost_ManyCallsOnOneInstance runs vars, logs and config on one
// instance many times: the guest's Extism memory stays consistent (every
// block freed exactly once).
func TestHost_ManyCallsOnOneInstance(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{Pool: abi.Pool{Max: 1}, Config: map[string]string{"k": "v"}})
	ctx := context.Background()
	for i := 1; i <= 300; i++ {
		out, err := h.Call(ctx, "kitchen", "var_incr", nil)
		if err != nil || string(out) != fmt.Sprint(i) {
			t.Fatalf("call %d: var_incr = %q, %v", i, out, err)
		}
		if _, err := h.Call(ctx, "kitchen", "log", []byte(strings.Repeat("l", i))); err != nil {
			t.Fatal(err)
		}
		if out, err := h.Call(ctx, "kitchen", "config", []byte("k")); err != nil || string(out) != "v" {
			t.Fatalf("call %d: config = %q, %v", i, out, err)
		}
	}
}
