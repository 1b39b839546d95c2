package xabi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestKmem_SameAsGoAccessors calls the kernel module's Wasm accessors and
// the Go kernel's (which the go-sdk engine's behaviour was matched
// against) on the same memory, at addresses around every bound, and
// requires the same value, or a trap with the same first words, from each.
func TestKmem_SameAsGoAccessors(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	kcm, err := buildKmem(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	km, err := r.InstantiateModule(ctx, kcm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	wk := newKernel(64)
	wk.attach(km.Memory())
	gk := newKernel(64)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, grow := range []bool{false, true} {
		if grow {
			// Allocation past the first pages grows both memories.
			wk.put8(offInitialized, 0)
			gk.put8(offInitialized, 0)
			if wk.alloc(3<<20) == 0 || gk.alloc(3<<20) == 0 {
				t.Fatal("alloc of 3 MiB failed")
			}
		}
		size := wk.size()
		if size != uint64(km.Memory().Size()) || size != gk.size() {
			t.Fatalf("sizes %d (Go kernel on Wasm memory), %d (Wasm), %d (Go kernel)", size, km.Memory().Size(), gk.size())
		}
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		copy(wk.bytesAt(0, size), buf)
		copy(gk.bytesAt(0, size), buf)
		// The root record's input offset and length.
		in := uint64(size - 300)
		for _, k := range []*kernel{wk, gk} {
			k.put64(offInputOffset, in)
			k.put64(offInputLength, 200)
		}
		inputGlobal := km.ExportedGlobal("input_offset").(api.MutableGlobal)
		inputGlobal.Set(in)
		addrs := []uint64{0, 1, 63, 64, 65, size - 9, size - 8, size - 7, size - 1, size, size + 1,
			1 << 32, 1<<32 + 64, 1<<32 + size - 8, 1<<32 - 1, 1 << 63, ^uint64(0)}
		for range 200 {
			addrs = append(addrs, rng.Uint64N(size+16))
		}
		for _, p := range addrs {
			for _, c := range []struct {
				name string
				args []uint64
				goFn func() uint64
			}{
				{"load_u64", []uint64{p}, func() uint64 {
					v, ok := gk.readUint64(p)
					if !ok {
						panic(fmt.Sprintf("could not read value at offset: %v", 0))
					}
					return v
				}},
				{"input_load_u64", []uint64{p}, func() uint64 {
					v, ok := gk.readUint64(p + in)
					if !ok {
						panic(fmt.Sprintf("could not read value at offset: %v", 0))
					}
					return v
				}},
				{"store_u64", []uint64{p, 0x0102030405060708}, func() uint64 {
					if !gk.writeUint64(p, 0x0102030405060708) {
						panic(fmt.Sprintf("could not write value '%v' at offset: %v", uint64(0x0102030405060708), p))
					}
					return 0
				}},
				{"load_u8", []uint64{p}, func() uint64 { return uint64(gk.loadU8(p)) }},
				{"store_u8", []uint64{p, 0x1ab}, func() uint64 { gk.storeU8(p, 0xab); return 0 }},
				{"input_load_u8", []uint64{p}, func() uint64 { return uint64(gk.inputLoadU8(p)) }},
			} {
				want, wantTrap := callGo(c.goFn)
				res, err := km.ExportedFunction(c.name).Call(ctx, c.args...)
				var got uint64
				if len(res) > 0 {
					got = res[0]
					if c.name == "load_u8" || c.name == "input_load_u8" {
						got = uint64(uint32(got))
					}
				}
				switch {
				case wantTrap != "" || err != nil:
					if err == nil || !strings.HasPrefix(err.Error(), wantTrap) {
						t.Fatalf("%s(%#x): trap %v, want one starting %q", c.name, p, err, wantTrap)
					}
				case got != want:
					t.Fatalf("%s(%#x) = %#x, want %#x", c.name, p, got, want)
				}
			}
		}
		wb, _ := km.Memory().Read(0, uint32(size))
		if string(wb) != string(gk.bytesAt(0, size)) {
			t.Fatal("memories differ after the stores")
		}
	}
}

// callGo runs f and returns its value, or the first line of what it
// panicked with.
func callGo(f func() uint64) (v uint64, trap string) {
	defer func() {
		if r := recover(); r != nil {
			s := fmt.Sprint(r)
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[:i]
			}
			trap = s
		}
	}()
	return f(), ""
}
