package fuel

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestInstrument_StackBound: a call deeper than Options.MaxStack traps with
// ErrStackExhausted, whatever the path (direct or through a table), while
// calls within the bound, tail-call loops and functions left by a branch
// to their own label do not drain it.
func TestInstrument_StackBound(t *testing.T) {
	const maxStack = 64 << 10
	// One parameter each; on the operand stack at the call: down the 1 it
	// adds to the result and the argument, ring those and the table index,
	// pending 40 values and the argument.
	depth := uint64(maxStack / FrameCost(1+2))
	ring := uint64(maxStack / FrameCost(1+3))
	pending := uint64(maxStack/FrameCost(1+41)) - 2
	tests := []struct {
		name, export string
		arg          uint64
		want         uint64 // result, if wantErr is nil
		wantErr      error
	}{
		{"within the bound", "down", depth - 2, depth - 2, nil},
		{"past the bound", "down", depth + 2, 0, ErrStackExhausted},
		{"forever", "forever", 0, 0, ErrStackExhausted},
		{"table within", "ring", ring - 2, ring - 2, nil},
		{"table past", "ring", ring + 2, 0, ErrStackExhausted},
		{"tail calls", "tail", 10_000_000, 0, nil},
		// Even n: 7; n%4 == 1: 10; n%4 == 3: 9.
		// The sum over k of k, k+1, ..., k+39.
		{"operand stack within", "pending", pending, 40*pending*(pending+1)/2 + 780*pending, nil},
		{"operand stack past", "pending", pending + 4, 0, ErrStackExhausted},
		{"branch exits", "leave", 1_000_000, 500_000*7 + 250_000*10 + 250_000*9, nil},
	}
	out, err := Instrument(fixture(t, "recurse"), Options{MaxStack: maxStack})
	if err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := instantiate(t, r, out)
			got, err := mod.ExportedFunction(tt.export).Call(WithMeter(context.Background(), NewMeter(0, 0)), tt.arg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "stack overflow") {
					t.Fatalf("got %v, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got[0] != tt.want {
				t.Fatalf("got %v, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestInstrument_StackBoundPerCall: every call from the host starts with
// the whole bound, also on an instance whose last call trapped.
func TestInstrument_StackBoundPerCall(t *testing.T) {
	const maxStack = 64 << 10
	depth := uint64(maxStack/FrameCost(1+2)) - 2
	out, err := Instrument(fixture(t, "recurse"), Options{MaxStack: maxStack})
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, newRuntime(t, false), out)
	ctx := WithMeter(context.Background(), NewMeter(0, 0))
	for i := range 3 {
		if _, err := mod.ExportedFunction("forever").Call(ctx, 0); !errors.Is(err, ErrStackExhausted) {
			t.Fatalf("forever: %v", err)
		}
		if got, err := mod.ExportedFunction("down").Call(ctx, depth); err != nil || got[0] != depth {
			t.Fatalf("call %d: got %v, %v", i, got, err)
		}
	}
}

func TestInstrument_MaxStackRange(t *testing.T) {
	for _, give := range []int64{-1, MaxMaxStack + 1} {
		if _, err := Instrument(fixture(t, "fib"), Options{MaxStack: give}); err == nil {
			t.Errorf("MaxStack %d accepted", give)
		}
	}
}
