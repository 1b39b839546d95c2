package host_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// The call-path benchmarks share one guest, testdata/tiny.wasm, so their
// figures compare: raw wazero, raw go-sdk, and bulkhead on top of go-sdk.

func tinyWasm(b *testing.B) []byte {
	wasm, err := os.ReadFile("testdata/tiny.wasm")
	if err != nil {
		b.Fatal(err)
	}
	return wasm
}

func BenchmarkCall_RawWazero(b *testing.B) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	env := r.NewHostModuleBuilder(abi.ExtismModule)
	stub := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	for _, f := range []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{"input_length", nil, []api.ValueType{api.ValueTypeI64}},
		{"input_load_u64", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}},
		{"input_load_u8", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI32}},
		{"alloc", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}},
		{"store_u64", []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}, nil},
		{"store_u8", []api.ValueType{api.ValueTypeI64, api.ValueTypeI32}, nil},
		{"output_set", []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}, nil},
	} {
		env.NewFunctionBuilder().WithGoModuleFunction(stub, f.params, f.results).Export(f.name)
	}
	if _, err := env.Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, tinyWasm(b))
	if err != nil {
		b.Fatal(err)
	}
	fn := mod.ExportedFunction("noop")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fn.Call(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// newRawExtism returns a go-sdk instance of the tiny guest. With timeout
// set, go-sdk turns on wazero's close-on-context-done, the safety bulkhead
// always has: that is the fair baseline for bulkhead's own overhead.
func newRawExtism(b *testing.B, timeout bool) *extism.Plugin {
	ctx := context.Background()
	m := extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: tinyWasm(b)}}}
	if timeout {
		m.Timeout = 30_000
	}
	cp, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cp.Close(ctx) })
	p, err := cp.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkCall_RawGoSDK(b *testing.B) {
	p := newRawExtism(b, false)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if rc, _, err := p.CallWithContext(ctx, "noop", nil); rc != 0 || err != nil {
			b.Fatal(rc, err)
		}
	}
}

func BenchmarkCall_RawGoSDKTimeout(b *testing.B) {
	p := newRawExtism(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if rc, _, err := p.CallWithContext(ctx, "noop", nil); rc != 0 || err != nil {
			b.Fatal(rc, err)
		}
	}
}

func BenchmarkCall_RawGoSDKTimeoutEcho1KiB(b *testing.B) {
	p := newRawExtism(b, true)
	ctx := context.Background()
	in := bytes.Repeat([]byte("x"), 1024)
	b.ReportAllocs()
	for b.Loop() {
		if rc, out, err := p.CallWithContext(ctx, "echo", in); rc != 0 || err != nil || len(out) != len(in) {
			b.Fatal(rc, err)
		}
	}
}

func benchHost(b *testing.B) *host.Host {
	h := newHostB(b)
	if _, err := h.Load(context.Background(), "tiny", tinyWasm(b), abi.Manifest{}); err != nil {
		b.Fatal(err)
	}
	return h
}

func newHostB(b *testing.B) *host.Host {
	h, err := host.New(host.WithCacheDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Stop(context.Background()) })
	return h
}

func BenchmarkCall_Bulkhead(b *testing.B) {
	h := benchHost(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(ctx, "tiny", "noop", nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCall_BulkheadEcho1KiB(b *testing.B) {
	h := benchHost(b)
	ctx := context.Background()
	in := bytes.Repeat([]byte("x"), 1024)
	b.ReportAllocs()
	for b.Loop() {
		if out, err := h.Call(ctx, "tiny", "echo", in); err != nil || len(out) != len(in) {
			b.Fatal(err)
		}
	}
}

func BenchmarkInstance_ColdStart(b *testing.B) {
	ctx := context.Background()
	m := extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: tinyWasm(b)}}}
	cp, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		p, err := cp.Instance(ctx, extism.PluginInstanceConfig{})
		if err != nil {
			b.Fatal(err)
		}
		p.Close(ctx)
	}
}

// BenchmarkLoad compiles the Go kitchen fixture (3.8 MB): cold, with a warm
// on-disk cache (as after a restart), and with the in-memory cache.
func BenchmarkLoad(b *testing.B) {
	wasm, err := os.ReadFile("../testdata/go/kitchen/kitchen.wasm")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			h, _ := host.New(host.WithCacheDir(b.TempDir()))
			if _, err := h.Load(ctx, "k", wasm, abi.Manifest{}); err != nil {
				b.Fatal(err)
			}
			h.Stop(ctx)
		}
	})
	b.Run("warm-disk-cache", func(b *testing.B) {
		dir := b.TempDir()
		h, _ := host.New(host.WithCacheDir(dir))
		if _, err := h.Load(ctx, "k", wasm, abi.Manifest{}); err != nil {
			b.Fatal(err)
		}
		h.Stop(ctx)
		for b.Loop() {
			h, _ := host.New(host.WithCacheDir(dir))
			if _, err := h.Load(ctx, "k", wasm, abi.Manifest{}); err != nil {
				b.Fatal(err)
			}
			h.Stop(ctx)
		}
	})
}

// BenchmarkEngine compares the engines side by side in one run, on the
// full Invoke path (retry, breaker, limiter, attempt timeout, call): a
// no-op, and echoes of 1 KiB, 64 KiB and 1 MiB through the tiny guest,
// which moves data in 8-byte host calls as upstream PDKs do.
func BenchmarkEngine(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{{"noop", -1}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}
	for _, sz := range sizes {
		for _, engine := range []string{abi.EngineExtism, abi.EngineNative} {
			b.Run(sz.name+"/"+engine, func(b *testing.B) {
				h, err := host.New(host.WithCacheDir(b.TempDir()), host.WithEngine(engine))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { h.Stop(context.Background()) })
				ctx := context.Background()
				if _, err := h.Load(ctx, "tiny", tinyWasm(b), abi.Manifest{MaxInput: 2 << 20, MaxOutput: 2 << 20}); err != nil {
					b.Fatal(err)
				}
				req := host.InvokeRequest{Plugin: "tiny", Function: "noop"}
				if sz.n >= 0 {
					req.Function, req.Input = "echo", bytes.Repeat([]byte("x"), sz.n)
					b.SetBytes(int64(sz.n))
				}
				b.ReportAllocs()
				for b.Loop() {
					res, err := h.Invoke(ctx, req)
					if err != nil || len(res.Output) != len(req.Input) {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEngine_SDK is BenchmarkEngine through an SDK guest (the C
// kitchen fixture), which moves input and output with the bulk transfer
// host functions.
func BenchmarkEngine_SDK(b *testing.B) {
	wasm, err := os.ReadFile("../testdata/c/kitchen/kitchen.wasm")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1 << 10, 64 << 10, 1 << 20} {
		for _, engine := range []string{abi.EngineExtism, abi.EngineNative} {
			b.Run(fmt.Sprintf("%dKiB/%s", n>>10, engine), func(b *testing.B) {
				h, err := host.New(host.WithCacheDir(b.TempDir()), host.WithEngine(engine))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { h.Stop(context.Background()) })
				ctx := context.Background()
				if _, err := h.Load(ctx, "c", wasm, abi.Manifest{MaxInput: 2 << 20, MaxOutput: 2 << 20}); err != nil {
					b.Fatal(err)
				}
				req := host.InvokeRequest{Plugin: "c", Function: "echo", Input: bytes.Repeat([]byte("x"), n)}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					res, err := h.Invoke(ctx, req)
					if err != nil || len(res.Output) != n {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkInvoke_Policy is the native no-op Invoke under the host's
// default policy (retry, breaker) and under one that also has a
// concurrency limiter and an attempt timeout.
func BenchmarkInvoke_Policy(b *testing.B) {
	full := resilience.Policy{
		Retry:          resilience.RetryPolicy{MaxAttempts: 3},
		Limiter:        resilience.LimiterPolicy{MaxConcurrent: 64},
		AttemptTimeout: resilience.Duration(5 * time.Second),
	}
	for _, tc := range []struct {
		name   string
		policy *resilience.Policy
	}{{"default", nil}, {"limiter+attempt-timeout", &full}} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := host.New(host.WithCacheDir(b.TempDir()), host.WithEngine(abi.EngineNative))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { h.Stop(context.Background()) })
			ctx := context.Background()
			if _, err := h.Load(ctx, "tiny", tinyWasm(b), abi.Manifest{}); err != nil {
				b.Fatal(err)
			}
			if tc.policy != nil {
				if err := h.SetPolicy("tiny", *tc.policy); err != nil {
					b.Fatal(err)
				}
			}
			req := host.InvokeRequest{Plugin: "tiny", Function: "noop"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Invoke(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
