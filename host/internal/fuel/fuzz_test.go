package fuel

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument feeds the fixtures and mutations of them to Instrument:
// it never panics, refuses with one of its documented errors, refuses a
// valid module only as unsupported, and turns every module wazero accepts
// into one wazero accepts too, importing the refill function.
func FuzzInstrument(f *testing.F) {
	for _, name := range fixtures(f) {
		f.Add(fixture(f, name))
	}
	f.Add(atomicModule)
	ctx := context.Background()
	// The interpreter validates exactly as the compiler does, faster.
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { _ = r.Close(ctx) })
	valid := func(b []byte) error {
		cm, err := r.CompileModule(ctx, b)
		if err == nil {
			_ = cm.Close(ctx)
		}
		return err
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Instrument(in, Options{})
		if err != nil {
			// Input refused as malformed is not given to wazero: its
			// decoder allocates by declared counts and runs out of memory
			// on a few bytes claiming billions of entries.
			var u *UnsupportedError
			if !errors.As(err, &u) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInstrumented) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		inErr := valid(in)
		outErr := valid(out)
		if inErr == nil && outErr != nil {
			t.Fatalf("valid module instrumented into an invalid one: %v", outErr)
		}
		if outErr == nil {
			cm, err := r.CompileModule(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			defer cm.Close(ctx)
			found := false
			for _, d := range cm.ImportedFunctions() {
				if m, n, _ := d.Import(); m == HostModuleName && n == RefillName {
					found = true
				}
			}
			if !found {
				t.Fatal("output does not import refill")
			}
		}
	})
}
