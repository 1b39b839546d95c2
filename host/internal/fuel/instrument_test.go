package fuel

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
)

func TestInstrument_ValidatesEveryFixture(t *testing.T) {
	ctx := context.Background()
	// The interpreter validates exactly as the compiler does, and compiles
	// the 2 MB Go guest much faster (which matters under -race).
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(withTailCalls))
	defer r.Close(ctx)
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			in := fixture(t, name)
			out := instrument(t, in)
			cm, err := r.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("instrumented module does not compile: %v", err)
			}
			orig, err := r.CompileModule(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			// Exports keep their names and signatures.
			for name, def := range orig.ExportedFunctions() {
				got, ok := cm.ExportedFunctions()[name]
				if !ok {
					t.Fatalf("export %q lost", name)
				}
				if !slices.Equal(got.ParamTypes(), def.ParamTypes()) || !slices.Equal(got.ResultTypes(), def.ResultTypes()) {
					t.Errorf("export %q changed signature", name)
				}
			}
			if len(cm.ExportedFunctions()) != len(orig.ExportedFunctions()) {
				t.Errorf("exports: got %d, want %d", len(cm.ExportedFunctions()), len(orig.ExportedFunctions()))
			}
			// Imports: the originals plus refill.
			var imports []string
			for _, d := range cm.ImportedFunctions() {
				m, n, _ := d.Import()
				imports = append(imports, m+"."+n)
			}
			if !slices.Contains(imports, HostModuleName+"."+RefillName) {
				t.Errorf("refill not imported: %v", imports)
			}
			if len(imports) != len(orig.ImportedFunctions())+1 {
				t.Errorf("imports: got %v", imports)
			}
		})
	}
}

func TestInstrument_Refuses(t *testing.T) {
	fib := fixture(t, "fib")
	once := instrument(t, fib)
	tests := []struct {
		name string
		give []byte
		want error
	}{
		{"twice", once, ErrInstrumented},
		{"empty", nil, ErrMalformed},
		{"component or wrong version", []byte("\x00asm\x0d\x00\x01\x00"), ErrMalformed},
		{"truncated", fib[:len(fib)-9], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Instrument(tt.give, Options{})
			if !errors.Is(err, tt.want) || out != nil {
				t.Fatalf("got %v, %d bytes; want %v", err, len(out), tt.want)
			}
		})
	}
}

// atomicModule is (module (memory 1 1 shared) (func (result i32)
// (i32.atomic.load (i32.const 0)))), which needs the threads proposal.
var atomicModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type () -> i32
	0x03, 0x02, 0x01, 0x00, // func 0: type 0
	0x05, 0x04, 0x01, 0x03, 0x01, 0x01, // memory shared 1 1
	0x0a, 0x0a, 0x01, 0x08, 0x00, 0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x0b, // body
}

func TestInstrument_UnsupportedThreads(t *testing.T) {
	_, err := Instrument(atomicModule, Options{})
	var u *UnsupportedError
	if !errors.As(err, &u) {
		t.Fatalf("got %v, want *UnsupportedError", err)
	}
	if u.Func != 0 || u.Offset != 32 {
		t.Errorf("got func %d offset %d, want 0, 32: %v", u.Func, u.Offset, err)
	}
}

// Bulk memory and table instructions are charged by their length: one
// unit per 8 bytes or per table element, on top of the instruction.
func TestMeter_BulkChargedByLength(t *testing.T) {
	r := newRuntime(t, false)
	mod := instantiate(t, r, instrument(t, fixture(t, "bulk")))
	used := func(export string, n uint64) int64 {
		t.Helper()
		m := NewMeter(0, 0)
		if _, err := mod.ExportedFunction(export).Call(WithMeter(context.Background(), m), n); err != nil {
			t.Fatal(err)
		}
		return m.Used()
	}
	// memory.fill and memory.copy of n bytes: 2 * n/8 more than of none.
	if got, want := used("fill", 4096)-used("fill", 0), int64(2*4096/8); got != want {
		t.Errorf("fill(4096) used %d more than fill(0), want %d", got, want)
	}
	if got, want := used("fill", 7)-used("fill", 0), int64(0); got != want {
		t.Errorf("fill(7) used %d more than fill(0), want %d", got, want)
	}
	if got, want := used("tfill", 1000)-used("tfill", 0), int64(1000); got != want {
		t.Errorf("tfill(1000) used %d more than tfill(0), want %d", got, want)
	}
}

// A failed memory.grow, which wazero reports only by returning -1 to the
// guest, is reported to the host through refill.
func TestMeter_GrowFailed(t *testing.T) {
	r := newRuntime(t, false)
	mod := instantiate(t, r, instrument(t, fixture(t, "bulk")))
	grow := func(pages uint64) (int32, bool) {
		t.Helper()
		m := NewMeter(0, 0)
		res, err := mod.ExportedFunction("grow").Call(WithMeter(context.Background(), m), pages)
		if err != nil {
			t.Fatal(err)
		}
		return int32(res[0]), m.GrowFailed()
	}
	if got, failed := grow(1); got != 1 || failed {
		t.Errorf("grow(1) = %d, failed %v; want 1 (the old size), not failed", got, failed)
	}
	if got, failed := grow(70_000); got != -1 || !failed {
		t.Errorf("grow(70000) = %d, failed %v; want -1, failed", got, failed)
	}
}
