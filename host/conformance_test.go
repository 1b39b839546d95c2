package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// conformanceFixtures are the guests that must behave alike. Each is built
// from source under testdata/ by `make testdata` and committed; adding a
// language is adding a row.
var conformanceFixtures = []struct {
	lang string
	path string // relative to testdata/
	// upstream marks a module built with an upstream Extism PDK: it has no
	// bulkhead host functions, so it runs the behaviours that need none.
	upstream bool
	// trapMsg is text the trap's message must carry (from the guest's
	// stderr), or "" when the language reports nothing.
	trapMsg string
	// durable marks a fixture with the "durable" export, which drives an
	// SDK's checkpoint, state and progress functions.
	durable bool
}{
	{lang: "go", path: "go/kitchen/kitchen.wasm", trapMsg: "deliberate trap"},
	{lang: "rust", path: "rust/kitchen/kitchen.wasm", trapMsg: "deliberate trap", durable: true},
	{lang: "c", path: "c/kitchen/kitchen.wasm", trapMsg: "deliberate trap", durable: true},
	{lang: "assemblyscript", path: "assemblyscript/kitchen/kitchen.wasm", durable: true},
	{lang: "wat", path: "wat/kitchen.wasm"},
	{lang: "upstream-as-pdk", path: "upstream/kitchen.wasm", upstream: true},
}

// guest is one fixture loaded into a host, as a conformance behaviour sees it.
type guest struct {
	h       *host.Host
	name    string
	wasm    []byte
	logs    *logSink
	trapMsg string
}

func (g *guest) call(t *testing.T, fn string, in []byte, opts ...host.CallOption) ([]byte, error) {
	t.Helper()
	return g.h.Call(context.Background(), g.name, fn, in, opts...)
}

// guestError asserts err is a *host.GuestError and returns it.
func guestError(t *testing.T, err error) *host.GuestError {
	t.Helper()
	var ge *host.GuestError
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v (%T), want a *host.GuestError", err, err)
	}
	return ge
}

// conformance is the table of behaviours every fixture must show. hostFuncs
// marks those that need bulkhead's own host functions, durable those that
// need the "durable" export.
var conformance = []struct {
	name      string
	hostFuncs bool
	durable   bool
	run       func(t *testing.T, g *guest)
}{
	{name: "echo binary 0B 1B 1KiB 1MiB", run: func(t *testing.T, g *guest) {
		for _, n := range []int{0, 1, 1 << 10, 1 << 20} {
			in := make([]byte, n)
			for i := range in {
				in[i] = byte(i*7 + 3*(i>>8)) // every byte value, zeros included
			}
			out, err := g.call(t, "echo", in)
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("echo of %d bytes: got %d bytes, %v", n, len(out), err)
			}
		}
	}},
	{name: "json in and out", run: func(t *testing.T, g *guest) {
		out, err := g.call(t, "json", []byte(`{"a":40,"b":2}`))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Sum *int64 `json:"sum"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Sum == nil || *got.Sum != 42 {
			t.Fatalf("json = %s (%v), want {\"sum\":42}", out, err)
		}
		out, err = g.call(t, "json", []byte(` { "b" : -7 , "a" : 1000000 } `))
		if err != nil || !bytes.Contains(out, []byte("999993")) {
			t.Fatalf("json with spaces and a negative = %s, %v", out, err)
		}
		_, err = g.call(t, "json", []byte(`not json`))
		if !errors.Is(err, host.ErrPermanent) {
			t.Fatalf("bad JSON input = %v, want a permanent failure", err)
		}
	}},
	{name: "config", run: func(t *testing.T, g *guest) {
		out, err := g.call(t, "config", []byte("greeting"))
		if err != nil || string(out) != "héllo, wörld" {
			t.Fatalf("config = %q, %v", out, err)
		}
		_, err = g.call(t, "config", []byte("missing"))
		if ge := guestError(t, err); !ge.Permanent() || ge.Msg == "" {
			t.Fatalf("unset config key = %v, want a permanent failure with a message", err)
		}
	}},
	{name: "vars persist across calls on one instance", run: func(t *testing.T, g *guest) {
		var outs []string
		for range 3 {
			out, err := g.call(t, "var_incr", nil)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, string(out))
		}
		if strings.Join(outs, ",") != "1,2,3" {
			t.Fatalf("var_incr × 3 = %v, want 1,2,3", outs)
		}
	}},
	{name: "log at each level reaches the host logger", run: func(t *testing.T, g *guest) {
		line := "conformance log line from " + g.name
		if _, err := g.call(t, "log", []byte(line)); err != nil {
			t.Fatal(err)
		}
		got := g.logs.levels(line)
		want := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("log levels = %v, want %v", got, want)
		}
	}},
	{name: "retryable failure with message", run: func(t *testing.T, g *guest) {
		_, err := g.call(t, "fail", []byte("upstream said no"))
		ge := guestError(t, err)
		if ge.Kind != host.KindFailed || ge.Msg != "upstream said no" || ge.Permanent() || !ge.Code.Retryable() {
			t.Fatalf("fail = %#v", ge)
		}
	}},
	{name: "permanent failure code 2", run: func(t *testing.T, g *guest) {
		_, err := g.call(t, "fail_permanent", []byte("bad input"))
		ge := guestError(t, err)
		if ge.Code != abi.CodePermanent || !ge.Permanent() || ge.Msg != "bad input" || !errors.Is(err, host.ErrPermanent) {
			t.Fatalf("fail_permanent = %#v", ge)
		}
	}},
	{name: "trap discards the instance, the next call works", run: func(t *testing.T, g *guest) {
		_, err := g.call(t, "trap", nil)
		if !errors.Is(err, host.ErrTrap) {
			t.Fatalf("trap = %v, want ErrTrap", err)
		}
		if g.trapMsg != "" && !strings.Contains(err.Error(), g.trapMsg) {
			t.Fatalf("trap = %v, want it to mention %q", err, g.trapMsg)
		}
		out, err := g.call(t, "echo", []byte("after the trap"))
		if err != nil || string(out) != "after the trap" {
			t.Fatalf("echo after trap = %q, %v", out, err)
		}
	}},
	{name: "invocation fields", hostFuncs: true, run: func(t *testing.T, g *guest) {
		dl := time.Now().Add(5 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), dl)
		defer cancel()
		give := abi.Invocation{RunID: "run-ü1", Workflow: "wf <&>", Node: "n\"1", Attempt: 3, IdempotencyKey: abi.IdempotencyKey("run-ü1", "n\"1")}
		out, err := g.h.Call(ctx, g.name, "invocation", nil, host.WithInvocation(give))
		if err != nil {
			t.Fatal(err)
		}
		got, err := abi.DecodeInvocation(out)
		if err != nil {
			t.Fatalf("invocation output %s: %v", out, err)
		}
		want := give
		want.DeadlineUnixMS, want.Plugin, want.PluginVersion = dl.UnixMilli(), g.name, host.Version(g.wasm)
		if got != want {
			t.Fatalf("invocation = %+v\nwant         %+v", got, want)
		}
	}},
	{name: "retry_after hint reaches the host", hostFuncs: true, run: func(t *testing.T, g *guest) {
		_, err := g.call(t, "retry_after", []byte("1500"))
		ge := guestError(t, err)
		if ge.Kind != host.KindFailed || ge.Msg != "rate limited" || ge.Hint != 1500*time.Millisecond {
			t.Fatalf("retry_after = %#v", ge)
		}
	}},
	{name: "checkpoints, plugin state and progress", hostFuncs: true, durable: true, run: func(t *testing.T, g *guest) {
		_, err := g.call(t, "durable", []byte("k"))
		if ge := guestError(t, err); ge.Kind != host.KindFailed || !strings.Contains(ge.Msg, "checkpoint not saved") {
			t.Fatalf("durable without a store = %#v, want a retryable failure", ge)
		}
		d := &memDurable{state: map[string][]byte{}}
		out, err := g.call(t, "durable", []byte("kéy"), host.WithDurable(d))
		if want := "had=none;prev=none;got=v:kéy;after=none"; err != nil || string(out) != want {
			t.Fatalf("durable = %q, %v; want %q", out, err, want)
		}
		out, err = g.call(t, "durable", []byte("kéy"), host.WithDurable(d))
		if want := "had=cp:kéy;prev=none;got=v:kéy;after=none"; err != nil || string(out) != want {
			t.Fatalf("second durable = %q, %v; want %q", out, err, want)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		want := abi.Progress{Done: 1, Total: 2, Message: `half way "kéy"`}
		if string(d.checkpoint) != "cp:kéy" || len(d.state) != 0 || len(d.progress) != 2 || d.progress[1] != want {
			t.Fatalf("store after durable: checkpoint %q, state %q, progress %+v", d.checkpoint, d.state, d.progress)
		}
	}},
}

// memDurable keeps a call's durable data in memory.
type memDurable struct {
	mu         sync.Mutex
	checkpoint []byte
	state      map[string][]byte
	progress   []abi.Progress
}

func (d *memDurable) SaveCheckpoint(_ context.Context, b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checkpoint = bytes.Clone(b)
	return nil
}

func (d *memDurable) LoadCheckpoint(context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.checkpoint), nil
}

func (d *memDurable) StateGet(_ context.Context, k string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.state[k]), nil
}

func (d *memDurable) StateSet(_ context.Context, k string, v []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state[k] = bytes.Clone(v)
	return nil
}

func (d *memDurable) StateDelete(_ context.Context, k string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.state, k)
	return nil
}

func (d *memDurable) StateUsage(context.Context) (keys, bytes int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.state {
		keys++
		bytes += int64(len(k) + len(v))
	}
	return keys, bytes, nil
}

func (d *memDurable) Progress(_ context.Context, p abi.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.progress = append(d.progress, p)
}

// TestConformance runs every behaviour against every language's fixture,
// with the module metered (the default) and unmetered: the expected outcomes
// are the same, so CPU metering changes nothing a guest can observe.
func TestConformance(t *testing.T) {
	for _, metered := range []bool{true, false} {
		mode := "metered"
		if !metered {
			mode = "unmetered"
		}
		t.Run(mode, func(t *testing.T) { testConformance(t, metered) })
	}
}

func testConformance(t *testing.T, metered bool) {
	for _, fx := range conformanceFixtures {
		t.Run(fx.lang, func(t *testing.T) {
			wasm := hosttest.Fixture(t, fx.path)
			logs := &logSink{}
			h := hosttest.New(t, host.WithLogger(slog.New(logs)), host.WithFuel(metered))
			g := &guest{h: h, name: "kitchen-" + fx.lang, wasm: wasm, logs: logs, trapMsg: fx.trapMsg}
			m := abi.Manifest{Config: map[string]string{"greeting": "héllo, wörld"}, Pool: abi.Pool{Max: 1}}
			if _, err := h.Load(context.Background(), g.name, wasm, m); err != nil {
				t.Fatal(err)
			}
			if info, _ := h.Plugin(g.name); info.Metered != metered {
				t.Fatalf("metered = %v, want %v (%s)", info.Metered, metered, info.Unmetered)
			}
			for _, b := range conformance {
				if fx.upstream && b.hostFuncs || b.durable && !fx.durable {
					continue
				}
				t.Run(b.name, func(t *testing.T) { b.run(t, g) })
			}
		})
	}
}

// outcome is what a caller of a guest export can observe.
type outcome struct {
	Out    []byte
	Code   uint32 // 0 success, the return code of a failure, 0xFFFF a trap
	Msg    string
	Logged []string // "level: message"
}

// TestConformance_UpstreamSameUnderExtism runs the upstream as-pdk fixture
// under bulkhead and under Extism's own go-sdk runtime: every output, code,
// error message and log line must be identical.
func TestConformance_UpstreamSameUnderExtism(t *testing.T) {
	wasm := hosttest.Fixture(t, "upstream/kitchen.wasm")
	config := map[string]string{"greeting": "héllo, wörld"}
	big := make([]byte, 100_003)
	for i := range big {
		big[i] = byte(i * 13)
	}
	calls := []struct{ fn, in string }{
		{"echo", ""}, {"echo", "x"}, {"echo", string(big)},
		{"json", `{"a":40,"b":2}`}, {"json", "not json"},
		{"config", "greeting"}, {"config", "missing"},
		{"var_incr", ""}, {"var_incr", ""}, {"var_incr", ""},
		{"log", "a line"},
		{"fail", "upstream said no"}, {"fail_permanent", "bad input"},
		{"trap", ""},
	}
	levelName := map[slog.Level]string{slog.LevelDebug: "debug", slog.LevelInfo: "info", slog.LevelWarn: "warn", slog.LevelError: "error"}

	// Under bulkhead.
	logs := &logSink{}
	h := hosttest.New(t, host.WithLogger(slog.New(logs)))
	if _, err := h.Load(context.Background(), "upstream", wasm, abi.Manifest{Config: config, Pool: abi.Pool{Max: 1}}); err != nil {
		t.Fatal(err)
	}
	var viaBulkhead []outcome
	for _, c := range calls {
		before := logs.count()
		out, err := h.Call(context.Background(), "upstream", c.fn, []byte(c.in))
		o := outcome{Out: out}
		if err != nil {
			ge := guestError(t, err)
			o.Code, o.Msg = uint32(ge.Code), ge.Msg
			if ge.Kind == host.KindTrap {
				o.Code, o.Msg = 0xFFFF, ""
			}
		}
		for _, r := range logs.since(before) {
			if name, ok := levelName[r.Level]; ok {
				o.Logged = append(o.Logged, name+": "+r.Message)
			}
		}
		viaBulkhead = append(viaBulkhead, o)
	}

	// Under Extism's go-sdk, with nothing of bulkhead in between.
	ctx := context.Background()
	extism.SetLogLevel(extism.LogLevelDebug) // the level bulkhead's engine sets
	p, err := extism.NewPlugin(ctx, extism.Manifest{
		Wasm:   []extism.Wasm{extism.WasmData{Data: wasm}},
		Config: config,
	}, extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var logged []string
	p.SetLogger(func(l extism.LogLevel, msg string) {
		// go-sdk's own debug lines (bulkhead's engine filters the same ones).
		sdk := l == extism.LogLevelDebug && (strings.HasPrefix(msg, "Calling function : ") ||
			strings.HasPrefix(msg, "Initializing runtime for ") || strings.HasPrefix(msg, "Calling _initialize"))
		if l >= extism.LogLevelDebug && !sdk {
			logged = append(logged, strings.ToLower(l.String())+": "+msg)
		}
	})
	var viaExtism []outcome
	for _, c := range calls {
		logged = nil
		rc, out, err := p.Call(c.fn, []byte(c.in))
		o := outcome{Out: out, Code: rc, Logged: logged}
		if err != nil {
			o.Msg = err.Error()
			if rc == 0 || c.fn == "trap" {
				o.Code, o.Msg = 0xFFFF, ""
			}
		}
		viaExtism = append(viaExtism, o)
	}

	for i, c := range calls {
		b, e := viaBulkhead[i], viaExtism[i]
		if !bytes.Equal(b.Out, e.Out) || b.Code != e.Code || b.Msg != e.Msg || fmt.Sprint(b.Logged) != fmt.Sprint(e.Logged) {
			t.Errorf("%s(%.20q):\n bulkhead %d-byte output, code %d, %q, logs %q\n extism   %d-byte output, code %d, %q, logs %q",
				c.fn, c.in, len(b.Out), b.Code, b.Msg, b.Logged, len(e.Out), e.Code, e.Msg, e.Logged)
		}
	}
	if string(viaBulkhead[1].Out) != "x" || string(viaBulkhead[5].Out) != "héllo, wörld" || string(viaBulkhead[9].Out) != "3" ||
		len(viaBulkhead[10].Logged) != 4 || viaBulkhead[12].Code != 2 || viaBulkhead[13].Code != 0xFFFF {
		t.Fatalf("the runtimes agree, but not with the conformance suite: %+v", viaBulkhead[:13])
	}
}

// logSink is a slog handler that keeps every record.
type logSink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }

func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	return nil
}

func (s *logSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSink) WithGroup(string) slog.Handler      { return s }

func (s *logSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *logSink) since(n int) []slog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]slog.Record(nil), s.recs[n:]...)
}

func (s *logSink) levels(msg string) []slog.Level {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slog.Level
	for _, r := range s.recs {
		if r.Message == msg {
			out = append(out, r.Level)
		}
	}
	return out
}

// BenchmarkConformance_Load measures what each language's fixture costs to
// load: compile (cold: a fresh in-memory cache; warm: the shared on-disk
// cache, as after a restart), instantiate, and one call.
func BenchmarkConformance_Load(b *testing.B) {
	for _, fx := range conformanceFixtures {
		for _, warm := range []bool{false, true} {
			name := fx.lang + "/cold"
			if warm {
				name = fx.lang + "/warm-disk-cache"
			}
			b.Run(name, func(b *testing.B) {
				wasm := hosttest.Fixture(b, fx.path)
				ctx := context.Background()
				var opts []host.Option
				if warm {
					opts = append(opts, host.WithCacheDir(hosttest.CacheDir()))
				}
				for b.Loop() {
					h, err := host.New(opts...)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := h.Load(ctx, "k", wasm, abi.Manifest{}); err != nil {
						b.Fatal(err)
					}
					if out, err := h.Call(ctx, "k", "echo", []byte("x")); err != nil || string(out) != "x" {
						b.Fatalf("echo = %q, %v", out, err)
					}
					if err := h.Stop(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(wasm)), "wasm-bytes")
			})
		}
	}
}
