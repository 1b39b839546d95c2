package fuel

import (
	"context"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
)

// terminatingCall is a fixture call that finishes, with its arguments.
type terminatingCall struct {
	fixture, export string
	args            []uint64
	slow            bool // skipped under -short
	// once: a second call on the same instance behaves differently (data
	// or element segments dropped; the Go runtime's heap already grown).
	once bool
}

// terminating lists the fixture calls the differential tests make.
var terminating = []terminatingCall{
	{"fib", "fib", []uint64{25}, false, false},
	{"count", "count", []uint64{1_000_000}, false, false},
	{"loops", "run", nil, false, false},
	{"multivalue", "run", nil, false, false},
	{"bulk", "run", nil, false, true},
	{"reftypes", "run", []uint64{1}, false, true}, // a non-null externref
	{"simd", "run", nil, false, false},
	{"brtable", "run", nil, false, true},
	{"callindirect", "run", nil, false, false},
	{"start", "run", nil, false, false},
	{"goguest", "run", []uint64{1024}, true, true}, // sha256 of 1 MiB
}

// eachTerminating runs f in a parallel subtest for every terminating
// fixture call, with the fixture's bytes and a fresh runtime; the slow ones
// are skipped under -short.
func eachTerminating(t *testing.T, f func(t *testing.T, tt terminatingCall, bare []byte, r wazero.Runtime)) {
	for _, tt := range terminating {
		t.Run(tt.fixture, func(t *testing.T) {
			if tt.slow && testing.Short() {
				t.Skip("compiles a 2 MB Go guest")
			}
			t.Parallel()
			f(t, tt, fixture(t, tt.fixture), newRuntime(t, false))
		})
	}
}

func TestInstrument_Differential(t *testing.T) {
	eachTerminating(t, func(t *testing.T, tt terminatingCall, bare []byte, r wazero.Runtime) {
		ctx := context.Background()
		metered := instrument(t, bare)

		want, err := instantiate(t, r, bare).ExportedFunction(tt.export).Call(ctx, tt.args...)
		if err != nil {
			t.Fatal(err)
		}
		var fuel []int64
		// Fresh instances; the slice size must not change the count.
		for _, slice := range []int64{0, 0, 1000} {
			m := NewMeter(0, slice)
			got, err := instantiate(t, r, metered).ExportedFunction(tt.export).Call(WithMeter(ctx, m), tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("instrumented: %v, bare: %v", got, want)
			}
			fuel = append(fuel, m.Used())
		}
		// Calls on one instance use the same fuel again.
		mod := instantiate(t, r, metered)
		for i := range 2 {
			if i > 0 && tt.once {
				break
			}
			m := NewMeter(0, 0)
			got, err := mod.ExportedFunction(tt.export).Call(WithMeter(ctx, m), tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("instrumented: %v, bare: %v", got, want)
			}
			fuel = append(fuel, m.Used())
		}
		if fuel[0] <= 0 || slices.Max(fuel) != slices.Min(fuel) {
			t.Errorf("fuel not deterministic: %v", fuel)
		}
		t.Logf("result %v, fuel %d", want, fuel[0])
	})
}

// The fuel of a call is the number of instructions of the regions it
// enters (end and else are free).
func TestMeter_UsedCountsInstructions(t *testing.T) {
	tests := []struct {
		name, fixture, export string
		arg                   uint64
		want                  int64
	}{
		// Entry region 4 (block, local.get, i32.eqz, br_if), then loop 1,
		// loop body 11 per iteration, then the final local.get 1.
		{"count 1000", "count", "count", 1000, 4 + 1 + 11*1000 + 1},
		{"count 0", "count", "count", 0, 4 + 1},
		// fib: entry 4 (local.get, i64.const, i64.lt_u, if), then-arm 1,
		// else-arm 9. fib(2) = one inner call and two leaves.
		{"fib 2", "fib", "fib", 2, 13 + 5 + 5},
		{"fib 10", "fib", "fib", 10, 88*13 + 89*5},
	}
	r := newRuntime(t, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := instantiate(t, r, instrument(t, fixture(t, tt.fixture)))
			m := NewMeter(0, 0)
			if _, err := mod.ExportedFunction(tt.export).Call(WithMeter(context.Background(), m), tt.arg); err != nil {
				t.Fatal(err)
			}
			if m.Used() != tt.want {
				t.Errorf("Used() = %d, want %d", m.Used(), tt.want)
			}
		})
	}
}

// Unrolling small loops moves the counter's tests, not its charges: every
// fixture gives the same results and uses exactly the same fuel unrolled
// and plain.
func TestUnroll_SameResultsAndFuel(t *testing.T) {
	eachTerminating(t, func(t *testing.T, tt terminatingCall, bare []byte, r wazero.Runtime) {
		ctx := context.Background()
		plain, err := Instrument(bare, Options{noUnroll: true})
		if err != nil {
			t.Fatal(err)
		}
		unrolled := instrument(t, bare)
		var results [2][]uint64
		var fuel [2]int64
		for i, wasm := range [][]byte{plain, unrolled} {
			m := NewMeter(0, 0)
			results[i], err = instantiate(t, r, wasm).ExportedFunction(tt.export).Call(WithMeter(ctx, m), tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			fuel[i] = m.Used()
		}
		if !slices.Equal(results[0], results[1]) || fuel[0] != fuel[1] {
			t.Errorf("plain: %v with %d fuel; unrolled: %v with %d fuel", results[0], fuel[0], results[1], fuel[1])
		}
		switch tt.fixture {
		case "count", "loops", "spin":
			if len(unrolled) <= len(plain) {
				t.Errorf("no loop unrolled: %d bytes plain, %d unrolled", len(plain), len(unrolled))
			}
		}
	})
}
