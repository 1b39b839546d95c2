package xabi

import (
	"context"
	_ "embed"
	"math/rand/v2"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// extismKernel is the Extism kernel that go-sdk v1.7.1 embeds (kernel
// v1.7.0, from github.com/extism/go-sdk's extism-runtime.wasm, BSD-3-Clause).
//
//go:embed testdata/extism-runtime.wasm
var extismKernel []byte

// TestKernel_SameAsExtismKernel drives the Go kernel and Extism's own
// kernel module with the same random sequences of alloc, free, length,
// loads, stores, input, output, error and reset, and requires the same
// result from every call, the same memory size and the same bytes.
func TestKernel_SameAsExtismKernel(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(40))
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, extismKernel)
	if err != nil {
		t.Fatal(err)
	}
	seeds := 60
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		k := newKernel(40)
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		call := func(name string, args ...uint64) (uint64, bool) {
			res, err := mod.ExportedFunction(name).Call(ctx, args...)
			if err != nil {
				return 0, false
			}
			if len(res) == 0 {
				return 0, true
			}
			return res[0], true
		}
		var handles []uint64
		pick := func() uint64 {
			switch {
			case len(handles) == 0 || rng.IntN(10) == 0:
				return uint64(rng.IntN(3 << 20))
			case rng.IntN(10) == 0:
				return handles[rng.IntN(len(handles))] + uint64(rng.IntN(20)) - 10
			}
			return handles[rng.IntN(len(handles))]
		}
		for step := range 400 {
			var op string
			var want, got uint64
			var wantOK, gotOK bool
			goCall := func(f func() uint64) (v uint64, ok bool) {
				defer func() {
					if recover() != nil {
						v, ok = 0, false
					}
				}()
				return f(), true
			}
			switch n := rng.IntN(14); n {
			case 0, 1, 2:
				size := uint64(rng.IntN(300))
				if rng.IntN(8) == 0 {
					size = uint64(rng.IntN(700_000))
				}
				op = "alloc"
				want, wantOK = call("alloc", size)
				got, gotOK = goCall(func() uint64 { return k.alloc(size) })
				if want != 0 {
					handles = append(handles, want)
				}
			case 3:
				h := pick()
				op = "free"
				want, wantOK = call("free", h)
				got, gotOK = goCall(func() uint64 { k.free(h); return 0 })
			case 4:
				h := pick()
				op = "length"
				want, wantOK = call("length", h)
				got, gotOK = goCall(func() uint64 { return k.length(h) })
			case 5:
				h := pick()
				op = "length_unsafe"
				want, wantOK = call("length_unsafe", h)
				got, gotOK = goCall(func() uint64 { return k.lengthUnsafe(h) })
			case 6:
				h := pick() + uint64(rng.IntN(16))
				v := rng.Uint64()
				op = "store"
				if rng.IntN(2) == 0 {
					want, wantOK = call("store_u8", h, v&0xff)
					got, gotOK = goCall(func() uint64 { k.storeU8(h, byte(v)); return 0 })
				} else {
					want, wantOK = call("store_u64", h, v)
					got, gotOK = goCall(func() uint64 {
						if !k.inBoundsFast(h + 7) {
							return 0
						}
						k.put64(uint64(uint32(h)), v)
						return 0
					})
				}
			case 7:
				h := pick() + uint64(rng.IntN(16))
				op = "load_u8"
				want, wantOK = call("load_u8", h)
				want = uint64(api.DecodeU32(want)) & 0xff
				got, gotOK = goCall(func() uint64 { return uint64(k.loadU8(h)) })
			case 8:
				h, n := pick(), uint64(rng.IntN(300))
				op = "input_set"
				want, wantOK = call("input_set", h, n)
				got, gotOK = goCall(func() uint64 { k.inputSet(h, n); return 0 })
			case 9:
				h, n := pick(), uint64(rng.IntN(300))
				op = "output_set"
				want, wantOK = call("output_set", h, n)
				got, gotOK = goCall(func() uint64 { k.outputSet(h, n); return 0 })
			case 10:
				h := pick()
				if rng.IntN(4) == 0 {
					h = 0
				}
				op = "error_set"
				want, wantOK = call("error_set", h)
				got, gotOK = goCall(func() uint64 { k.errorSet(h); return 0 })
			case 11:
				off := uint64(rng.IntN(400))
				op = "input_load_u8"
				want, wantOK = call("input_load_u8", off)
				want = uint64(api.DecodeU32(want)) & 0xff
				got, gotOK = goCall(func() uint64 { return uint64(k.inputLoadU8(off)) })
			case 12:
				if rng.IntN(4) != 0 {
					continue
				}
				op = "reset"
				want, wantOK = call("reset")
				got, gotOK = goCall(func() uint64 { k.reset(); return 0 })
				handles = handles[:0]
			case 13:
				for _, f := range []struct {
					name string
					off  uint64
				}{{"input_offset", offInputOffset}, {"input_length", offInputLength}, {"output_offset", offOutputOff},
					{"output_length", offOutputLen}, {"error_get", offError}, {"memory_bytes", offLength}} {
					w, _ := call(f.name)
					if g := k.field(f.off); g != w {
						t.Fatalf("seed %d step %d: %s = %d, kernel %d", seed, step, f.name, g, w)
					}
				}
				continue
			}
			if want != got || wantOK != gotOK {
				t.Fatalf("seed %d step %d: %s = %d (ok %v), kernel %d (ok %v)", seed, step, op, got, gotOK, want, wantOK)
			}
		}
		mem := mod.ExportedMemory("memory")
		if uint64(mem.Size()) != k.size() {
			t.Fatalf("seed %d: memory %d bytes, kernel %d", seed, k.size(), mem.Size())
		}
		kb, _ := mem.Read(0, mem.Size())
		for i, b := range kb {
			var g byte
			if i < len(k.mem) {
				g = k.mem[i]
			}
			if g != b {
				t.Fatalf("seed %d: byte %d = %d, kernel %d", seed, i, g, b)
			}
		}
		mod.Close(ctx)
	}
}
