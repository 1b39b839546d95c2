package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// The differential suite runs the same calls on every fixture under the
// native engine and under go-sdk (the reference) and requires the same
// outcome from each: output, error kind, return code, error message, log
// lines (debug and above: go-sdk drops trace lines), vars and config.

// diffCall is one call of a differential script.
type diffCall struct {
	fn      string
	in      []byte
	timeout time.Duration // 0: the plugin's
	durable bool          // with a fresh in-memory Durable for the engine
	// random marks an output that differs run to run: only its length
	// is compared. paced marks a call whose log lines a rate limiter
	// thins by the clock: they are not compared.
	random, paced bool
	// capRefused marks a call that fails after the memory cap refused a
	// grow, its memory far below the cap. Unmetered, the native engine
	// sees the refusal (KindMemory) and go-sdk's guess cannot (KindTrap):
	// a deliberate difference, checked as such.
	capRefused bool
}

// diffOutcome is what a caller can observe of one call.
type diffOutcome struct {
	Out  string
	Kind host.Kind
	Code abi.Code
	Msg  string
	Logs []string
}

func (o diffOutcome) String() string {
	out := o.Out
	if len(out) > 64 {
		out = fmt.Sprintf("%.64q… (%d bytes)", out, len(o.Out))
	} else {
		out = fmt.Sprintf("%q", out)
	}
	return fmt.Sprintf("out %s, kind %v, code %d, msg %q, logs %q", out, o.Kind, o.Code, o.Msg, o.Logs)
}

// durations in messages ("after 201ms") differ run to run.
var durationRE = regexp.MustCompile(`after [0-9.]+(ns|µs|ms|s)\b`)

// deadlineRE finds a call's deadline in invocation info.
var deadlineRE = regexp.MustCompile(`"deadline_unix_ms":[0-9]+`)

// runDiff runs script on wasm under engine and returns each outcome.
func runDiff(t *testing.T, engine string, metered bool, wasm []byte, m abi.Manifest, script []diffCall) []diffOutcome {
	t.Helper()
	logs := &logSink{}
	h := hosttest.New(t, host.WithLogger(slog.New(logs)), host.WithEngine(engine), host.WithFuel(metered))
	if _, err := h.Load(context.Background(), "p", wasm, m); err != nil {
		t.Fatalf("%s: load: %v", engine, err)
	}
	// A deadline for the whole script; the plugin's timeout bounds each call.
	deadline := time.Now().Add(10 * time.Minute)
	inv := abi.Invocation{RunID: "run-ü", Workflow: "wf", Node: "n", Attempt: 2, IdempotencyKey: "run-ü/n"}
	var outs []diffOutcome
	for _, c := range script {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if c.timeout > 0 {
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), c.timeout)
		}
		opts := []host.CallOption{host.WithInvocation(inv)}
		if c.durable {
			opts = append(opts, host.WithDurable(&memDurable{state: map[string][]byte{}}))
		}
		before := logs.count()
		out, err := h.Call(ctx, "p", c.fn, c.in, opts...)
		cancel()
		o := diffOutcome{Out: string(out)}
		if c.random {
			o.Out = fmt.Sprintf("%d random bytes", len(out))
		}
		if c.fn == "invocation" && err == nil {
			// The deadline is the call's, in the future.
			inv, derr := abi.DecodeInvocation(out)
			if derr != nil || inv.DeadlineUnixMS < time.Now().UnixMilli() {
				t.Fatalf("%s: invocation %s: %v", engine, out, derr)
			}
		}
		// Each call has its own deadline.
		o.Out = deadlineRE.ReplaceAllString(o.Out, `"deadline_unix_ms":D`)
		if err != nil {
			var ge *host.GuestError
			var le *host.LimitError
			switch {
			case errors.As(err, &ge):
				o.Kind, o.Code, o.Msg = ge.Kind, ge.Code, durationRE.ReplaceAllString(ge.Msg, "after D")
			case errors.As(err, &le):
				o.Msg = le.Error()
			default:
				o.Msg = err.Error()
			}
		}
		for _, r := range logs.since(before) {
			if c.paced {
				break
			}
			if r.Level >= slog.LevelDebug && r.Message != "" && !strings.HasPrefix(r.Message, "plugin ") {
				o.Logs = append(o.Logs, r.Level.String()+": "+r.Message)
			}
		}
		outs = append(outs, o)
	}
	return outs
}

// kitchenScript is the conformance behaviours as one script.
func kitchenScript(upstream, durable bool) []diffCall {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*7 + 3*(i>>8))
	}
	s := []diffCall{
		{fn: "echo"}, {fn: "echo", in: []byte("x")}, {fn: "echo", in: big[:1<<10]}, {fn: "echo", in: big[:100_003]}, {fn: "echo", in: big},
		{fn: "json", in: []byte(`{"a":40,"b":2}`)}, {fn: "json", in: []byte(` { "b" : -7 , "a" : 1000000 } `)}, {fn: "json", in: []byte("not json")},
		{fn: "config", in: []byte("greeting")}, {fn: "config", in: []byte("missing")}, {fn: "config", in: []byte("")},
		{fn: "var_incr"}, {fn: "var_incr"}, {fn: "var_incr"},
		{fn: "log", in: []byte("a line ü")}, {fn: "log", in: []byte("")},
		{fn: "fail", in: []byte("upstream said no")}, {fn: "fail", in: nil}, {fn: "fail_permanent", in: []byte("bad input")},
		{fn: "no_such_export"},
		{fn: "trap"}, {fn: "echo", in: []byte("after the trap")}, {fn: "var_incr"},
	}
	if !upstream {
		s = append(s, diffCall{fn: "invocation"}, diffCall{fn: "retry_after", in: []byte("1500")})
	}
	if durable {
		s = append(s, diffCall{fn: "durable", in: []byte("k")}, diffCall{fn: "durable", in: []byte("kéy"), durable: true})
	}
	return s
}

// diffFixtures are every fixture with the script it runs.
func diffFixtures() []struct {
	name   string
	path   string
	m      abi.Manifest
	script []diffCall
} {
	config := map[string]string{"greeting": "héllo, wörld", "empty": ""}
	type fx = struct {
		name   string
		path   string
		m      abi.Manifest
		script []diffCall
	}
	var out []fx
	for _, f := range conformanceFixtures {
		out = append(out, fx{f.lang, f.path, abi.Manifest{Config: config, Pool: abi.Pool{Max: 1}}, kitchenScript(f.upstream, f.durable)})
	}
	goHostile := []diffCall{
		{fn: "noop"}, {fn: "random", in: []byte("16"), random: true}, {fn: "environ"}, {fn: "readfile", in: []byte("/etc/hostname")},
		{fn: "writefile", in: []byte("/tmp/x")}, {fn: "http_get", in: []byte("http://127.0.0.1:1/")},
		{fn: "spin", timeout: 300 * time.Millisecond}, {fn: "echo", in: []byte("after spin")},
		{fn: "sleep", in: []byte("5000"), timeout: 300 * time.Millisecond},
		{fn: "membomb"}, {fn: "echo", in: []byte("after membomb")},
		{fn: "huge", in: []byte("2000000")},
		{fn: "exit", in: []byte("3")}, {fn: "exit", in: []byte("0")}, {fn: "echo", in: []byte("after exit")},
		{fn: "health"}, {fn: "checkpoint_interval"},
	}
	out = append(out,
		// A generous timeout: under the race detector on a busy machine a Go
		// guest filling its memory cap can take tens of seconds.
		fx{"go-hostile", "go/kitchen/kitchen.wasm", abi.Manifest{Config: config, Pool: abi.Pool{Max: 1}, Memory: 32 << 20, MaxOutput: 1 << 20,
			Timeout: abi.Duration(3 * time.Minute)}, goHostile},
		fx{"grow", "../host/testdata/grow.wasm", abi.Manifest{Memory: 16 << 20}, []diffCall{{fn: "bigGrow"}, {fn: "capGrow", capRefused: true}, {fn: "nearCapTrap"}}},
		fx{"stack", "../host/testdata/stack.wasm", abi.Manifest{MaxStack: 512 << 10}, []diffCall{{fn: "deep"}, {fn: "runaway"}, {fn: "deep"}}},
		fx{"abuse", "../host/testdata/abuse.wasm", abi.Manifest{StateKeys: 5, MaxError: 1 << 10, LogLinesPerSecond: 5},
			[]diffCall{{fn: "state_loop", durable: true, paced: true}, {fn: "checkpoint_loop", durable: true, paced: true}, {fn: "log_loop", paced: true}, {fn: "big_error"}}},
		fx{"bulk", "../host/testdata/bulk.wasm", abi.Manifest{},
			[]diffCall{{fn: "echo", in: []byte("héllo")}, {fn: "echo"}, {fn: "input_oob", in: []byte("0123456789")},
				{fn: "input_oob"}, {fn: "input_far", in: []byte("x")}, {fn: "write_oob"}, {fn: "read_no_block"}}},
		fx{"sidebyside", "assemblyscript/sidebyside/sidebyside.wasm", abi.Manifest{Pool: abi.Pool{Max: 1}},
			[]diffCall{{fn: "both", in: []byte("héllo")}, {fn: "retry_later", in: []byte("2500")}}},
	)
	return out
}

// TestDifferential_NativeSameAsExtism is the differential suite: every
// fixture, metered and unmetered, under both engines.
func TestDifferential_NativeSameAsExtism(t *testing.T) {
	for _, f := range diffFixtures() {
		t.Run(f.name, func(t *testing.T) {
			wasm := hosttest.Fixture(t, f.path)
			for _, metered := range []bool{true, false} {
				if !metered && testing.Short() && f.name != "go-hostile" && f.name != "wat" && f.name != "grow" {
					continue
				}
				want := runDiff(t, abi.EngineExtism, metered, wasm, f.m, f.script)
				got := runDiff(t, abi.EngineNative, metered, wasm, f.m, f.script)
				for i, c := range f.script {
					if !metered && c.capRefused {
						if got[i].Kind != host.KindMemory || want[i].Kind != host.KindTrap {
							t.Errorf("unmetered %s: native %v, extism %v; want KindMemory and go-sdk's KindTrap", c.fn, got[i], want[i])
						}
						continue
					}
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("metered=%v %s(%.20q):\n native %v\n extism %v", metered, c.fn, c.in, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestEngine_NoGrowthOverManyCalls: 100,000 calls on each engine's
// instance pool (a no-op and a 1 KiB echo through the Invoke path) leave
// the goroutine count and the live heap where they were after a warm-up.
func TestEngine_NoGrowthOverManyCalls(t *testing.T) {
	const calls = 100_000
	in := bytes.Repeat([]byte("x"), 1<<10)
	for _, engine := range []string{abi.EngineNative, abi.EngineExtism} {
		t.Run(engine, func(t *testing.T) {
			n := calls
			if engine == abi.EngineExtism {
				n /= 10 // go-sdk takes 20× longer per call
			}
			h := hosttest.New(t, host.WithEngine(engine))
			ctx := context.Background()
			if _, err := h.Load(ctx, "tiny", hosttest.Fixture(t, "../host/testdata/tiny.wasm"), abi.Manifest{Pool: abi.Pool{Max: 2}}); err != nil {
				t.Fatal(err)
			}
			run := func(k int) {
				for i := range k {
					req := host.InvokeRequest{Plugin: "tiny", Function: "noop"}
					if i%2 == 1 {
						req.Function, req.Input = "echo", in
					}
					res, err := h.Invoke(ctx, req)
					if err != nil || len(res.Output) != len(req.Input) {
						t.Fatalf("call %d: %d bytes, %v", i, len(res.Output), err)
					}
				}
			}
			heap := func() uint64 {
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			run(1000)
			g0, h0 := runtime.NumGoroutine(), heap()
			run(n)
			g1, h1 := runtime.NumGoroutine(), heap()
			if g1 > g0 {
				t.Errorf("goroutines %d before %d calls, %d after", g0, n, g1)
			}
			if h1 > h0+4<<20 {
				t.Errorf("live heap %d KiB before %d calls, %d KiB after", h0>>10, n, h1>>10)
			}
			t.Logf("%s: %d calls, goroutines %d → %d, live heap %d → %d KiB", engine, n, g0, g1, h0>>10, h1>>10)
		})
	}
}

// TestBulk_SDKsUseBulkTransfer: each of bulkhead's four SDKs moves input
// and output with the bulk transfer host functions, not in 8-byte steps;
// the upstream PDK's fixture keeps to the plain Extism ABI.
func TestBulk_SDKsUseBulkTransfer(t *testing.T) {
	for _, f := range conformanceFixtures {
		if f.lang == "wat" {
			continue
		}
		t.Run(f.lang, func(t *testing.T) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter()) // reads imports, compiles nothing
			defer r.Close(ctx)
			cm, err := r.CompileModule(ctx, hosttest.Fixture(t, f.path))
			if err != nil {
				t.Fatal(err)
			}
			imports := map[string]bool{}
			for _, fn := range cm.ImportedFunctions() {
				mod, name, _ := fn.Import()
				imports[mod+"."+name] = true
			}
			bulk := imports[abi.HostModule+"."+abi.FuncInputRead] && imports[abi.HostModule+"."+abi.FuncBlockWrite]
			if bulk == f.upstream {
				t.Fatalf("imports input_read and block_write: %v, want %v (imports %v)", bulk, !f.upstream, imports)
			}
			if !f.upstream && imports[abi.ExtismModule+".input_load_u64"] {
				t.Fatalf("the SDK still reads its input in 8-byte steps")
			}
		})
	}
}

// TestBulk_Bounds: the bulk functions copy whole payloads, and an address
// range outside the guest's memory traps that call only.
func TestBulk_Bounds(t *testing.T) {
	h := hosttest.New(t)
	ctx := context.Background()
	if _, err := h.Load(ctx, "bulk", hosttest.Fixture(t, "../host/testdata/bulk.wasm"), abi.Manifest{Pool: abi.Pool{Max: 1}}); err != nil {
		t.Fatal(err)
	}
	in := bytes.Repeat([]byte("héllo "), 5000)
	if out, err := h.Call(ctx, "bulk", "echo", in); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("echo = %d bytes, %v", len(out), err)
	}
	for _, fn := range []string{"input_oob", "input_far", "write_oob"} {
		_, err := h.Call(ctx, "bulk", fn, []byte("0123456789"))
		if !errors.Is(err, host.ErrTrap) || !strings.Contains(err.Error(), "outside the guest's memory") {
			t.Fatalf("%s = %v, want a trap naming the guest's memory", fn, err)
		}
	}
	if _, err := h.Call(ctx, "bulk", "read_no_block", nil); err != nil {
		t.Fatalf("block_read of a handle that names no block = %v, want 0 bytes copied", err)
	}
}

// TestEngine_Selection: the host option sets the default engine, a
// manifest's engine wins over it, and an unknown name is refused.
func TestEngine_Selection(t *testing.T) {
	wasm := hosttest.Fixture(t, "wat/kitchen.wasm")
	ctx := context.Background()
	for _, tt := range []struct{ hostEngine, manifest, want string }{
		{"", "", host.DefaultEngine},
		{abi.EngineExtism, "", abi.EngineExtism},
		{abi.EngineNative, "", abi.EngineNative},
		{abi.EngineNative, abi.EngineExtism, abi.EngineExtism},
		{abi.EngineExtism, abi.EngineNative, abi.EngineNative},
	} {
		h := hosttest.New(t, host.WithEngine(tt.hostEngine))
		if _, err := h.Load(ctx, "k", wasm, abi.Manifest{Engine: tt.manifest}); err != nil {
			t.Fatal(err)
		}
		if info, _ := h.Plugin("k"); info.Engine != tt.want {
			t.Errorf("host %q, manifest %q: engine %q, want %q", tt.hostEngine, tt.manifest, info.Engine, tt.want)
		}
		if out, err := h.Call(ctx, "k", "echo", []byte("x")); err != nil || string(out) != "x" {
			t.Errorf("host %q, manifest %q: echo = %q, %v", tt.hostEngine, tt.manifest, out, err)
		}
	}
	if _, err := host.New(host.WithEngine("wasmtime")); err == nil {
		t.Error("New accepted an unknown engine")
	}
	h := hosttest.New(t)
	if _, err := h.Load(ctx, "k", wasm, abi.Manifest{Engine: "wasmtime"}); !errors.Is(err, host.ErrInvalidModule) {
		t.Errorf("Load with an unknown engine = %v, want ErrInvalidModule", err)
	}
}

// TestEngine_NativeInputOverKernelMemory: on the native engine an input the
// kernel memory cannot hold under the memory cap fails the call as the
// memory limit (go-sdk drops such an input and calls the guest with none).
func TestEngine_NativeInputOverKernelMemory(t *testing.T) {
	h := hosttest.New(t, host.WithEngine(abi.EngineNative))
	ctx := context.Background()
	if _, err := h.Load(ctx, "k", hosttest.Fixture(t, "wat/kitchen.wasm"), abi.Manifest{Memory: 2 << 20, MaxInput: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	_, err := h.Call(ctx, "k", "echo", make([]byte, 3<<20))
	if !errors.Is(err, host.ErrMemoryLimit) {
		t.Fatalf("echo of 3 MiB under a 2 MiB cap = %v, want ErrMemoryLimit", err)
	}
	if out, err := h.Call(ctx, "k", "echo", []byte("small")); err != nil || string(out) != "small" {
		t.Fatalf("echo after = %q, %v", out, err)
	}
}
