package fuel

import (
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// benchGuest runs fn four ways in one benchmark: bare (no metering; a
// spinning guest could not be stopped), under wazero's close-on-context-done,
// instrumented with fuel and the stack bound, and with fuel alone.
func benchGuest(b *testing.B, name, export string, args ...uint64) {
	wasm := fixture(b, name)
	metered := instrument(b, wasm)
	unbounded, err := Instrument(wasm, Options{noStack: true})
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name        string
		wasm        []byte
		closeOnDone bool
		meter       bool
	}{
		{"bare", wasm, false, false},
		{"closeOnDone", wasm, true, false},
		{"fuel", metered, false, true},
		{"fuelNoStackBound", unbounded, false, true},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			r := newRuntime(b, v.closeOnDone)
			fn := instantiate(b, r, v.wasm).ExportedFunction(export)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			var m *Meter
			b.ResetTimer()
			for b.Loop() {
				callCtx := ctx
				if v.meter {
					m = NewMeter(0, 0)
					callCtx = WithMeter(ctx, m)
				}
				if _, err := fn.Call(callCtx, args...); err != nil {
					b.Fatal(err)
				}
			}
			if m != nil {
				b.ReportMetric(float64(m.Used()), "fuel/op")
			}
		})
	}
}

// BenchmarkTightLoop: one million iterations of a counting loop.
func BenchmarkTightLoop(b *testing.B) { benchGuest(b, "count", "count", 1_000_000) }

// BenchmarkFib: fib(25), about 250 000 loop-free calls.
func BenchmarkFib(b *testing.B) { benchGuest(b, "fib", "fib", 25) }

// BenchmarkGoGuest: a Go-built guest hashing 1 MiB with SHA-256.
func BenchmarkGoGuest(b *testing.B) { benchGuest(b, "goguest", "run", 1024) }

// BenchmarkInstrument_GoGuest: rewrite time of the 2.4 MB Go guest.
func BenchmarkInstrument_GoGuest(b *testing.B) {
	wasm := fixture(b, "goguest")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(wasm, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefill: the host side of one refill.
func BenchmarkRefill(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx = WithMeter(ctx, NewMeter(0, 0))
	stack := []uint64{0}
	for b.Loop() {
		stack[0] = uint64(^uint64(0)) // counter -1
		refillStack(ctx, stack)
	}
}

var _ api.GoFunc = refillStack
