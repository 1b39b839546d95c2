package fuel

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// fixture reads testdata/name.wasm.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fixtures lists every committed .wasm fixture by name.
func fixtures(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no fixtures: %v", err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p[:len(p)-len(".wasm")])
	}
	return names
}

func instrument(tb testing.TB, wasm []byte) []byte {
	tb.Helper()
	out, err := Instrument(wasm, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// withTailCalls is what wazero enables by default plus tail calls, which
// the rewriter accepts (the recurse fixture uses them).
const withTailCalls = api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall

// newRuntime returns a wazero runtime with the fuel host module, WASI and
// the "env" module some fixtures import, closed at the end of the test.
func newRuntime(tb testing.TB, closeOnDone bool) wazero.Runtime {
	tb.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone).WithCoreFeatures(withTailCalls))
	tb.Cleanup(func() { _ = r.Close(ctx) })
	if _, err := HostModule(ctx, r); err != nil {
		tb.Fatal(err)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().
		WithFunc(func(x int64) int64 { return x*3 + 1 }).
		Export("mix").
		Instantiate(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// instantiate compiles and instantiates wasm in r; Go guests get their
// _initialize run as the start function.
func instantiate(tb testing.TB, r wazero.Runtime, wasm []byte) api.Module {
	tb.Helper()
	ctx := context.Background()
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := wazero.NewModuleConfig().WithName("")
	if _, ok := cm.ExportedFunctions()["_initialize"]; ok {
		cfg = cfg.WithStartFunctions("_initialize")
	}
	mod, err := r.InstantiateModule(ctx, cm, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return mod
}
