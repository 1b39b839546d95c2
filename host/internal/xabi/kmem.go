package xabi

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The kernel's byte and word accessors (load_u64, store_u64,
// input_load_u64, load_u8, store_u8, input_load_u8) are what an upstream
// PDK calls once per 8 bytes it moves. As Go host functions each costs a
// return from compiled code to Go and back, which bounds a guest moving
// 1 MiB that way to the speed of a quarter million host calls. So the
// native engine keeps the kernel's memory in a small Wasm module of its
// own, one instance per guest instance, whose exported functions are
// those accessors: the guest calls them Wasm to Wasm, never leaving
// compiled code. The Go kernel (kernel.go) works on the same memory.
//
// The guest's imports of these six functions are renamed at compile time
// from EnvModule to kmemModule, and each guest instance is linked to its
// own kernel instance through wazero's import resolver.
//
// The functions keep the semantics of the Go ones: the word accessors
// trap with go-sdk's messages (through the two trap imports) when the
// 8 bytes are not all inside the memory, the byte accessors read 0 or do
// nothing outside [64, size] and trap on the last address, and
// input_load_u64 reads at the call's input handle (the exported global
// input_offset, which the host sets before each call).

// kmemModule is the module name the accessors' imports are renamed to.
const kmemModule = "bulkhead:kernel/memory"

// kmemTrapModule serves the kernel module's trap imports.
const kmemTrapModule = "bulkhead:kernel/trap"

// kmemFuncs are the imports served by the kernel's Wasm module.
var kmemFuncs = map[string]bool{
	"load_u64": true, "store_u64": true, "input_load_u64": true,
	"load_u8": true, "store_u8": true, "input_load_u8": true,
}

// kmemWasm is the kernel's Wasm module (see kmemBinary).
var kmemWasm = kmemBinary()

// kmemBinary encodes the kernel's Wasm module. In text form:
//
//	(module
//	  (import "bulkhead:kernel/trap" "load" (func $trap_load (param i64)))
//	  (import "bulkhead:kernel/trap" "store" (func $trap_store (param i64 i64)))
//	  (memory (export "memory") 16)
//	  (global $in (export "input_offset") (mut i64) (i64.const 0))
//	  (func (export "load_u64") (param $p i64) (result i64)
//	    (if (i64.gt_u (i64.add (i64.extend_i32_u (i32.wrap_i64 (local.get $p))) (i64.const 8)) $size)
//	      (then (call $trap_load (local.get $p))))
//	    (i64.load (i32.wrap_i64 (local.get $p))))
//	  (func (export "store_u64") (param $p i64) (param $v i64) ...same check, $trap_store... (i64.store ...))
//	  (func (export "input_load_u64") (param $o i64) (result i64) ...load_u64 of $o + $in...)
//	  (func (export "load_u8") (param $p i64) (result i32)
//	    (if (i64.lt_u (local.get $p) (i64.const 64)) (then (return (i32.const 0))))
//	    (if (i64.gt_u (local.get $p) $size) (then (return (i32.const 0))))
//	    (i32.load8_u (i32.wrap_i64 (local.get $p))))
//	  (func (export "store_u8") (param $p i64) (param $v i32) ...same bounds, i32.store8...)
//	  (func (export "input_load_u8") (param $o i64) (result i32)
//	    (if (i64.ge_u (local.get $o) (i64.load (i32.const 41))) (then (return (i32.const 0))))
//	    (i32.load8_u (i32.wrap_i64 (i64.add (i64.load (i32.const 33)) (local.get $o))))))
//
// where $size is the memory's size in bytes (memory.size << 16), and 41
// and 33 are the root record's input length and input offset.
func kmemBinary() []byte {
	const (
		i32, i64                       = 0x7f, 0x7e
		localGet, globalGet            = 0x20, 0x23
		wrap, extendU                  = 0xa7, 0xad
		i64Const, i32Const             = 0x42, 0x41
		i64Add, i64GtU, i64LtU, i64GeU = 0x7c, 0x56, 0x54, 0x5a
		i64Shl                         = 0x86
		i64Load, i64Store              = 0x29, 0x37
		load8U, store8                 = 0x2d, 0x3a
		ifOp, end, ret, call           = 0x04, 0x0b, 0x0f, 0x10
		unreachable                    = 0x00
	)
	size := []byte{0x3f, 0x00, extendU, i64Const, 16, i64Shl} // memory.size in bytes, as i64
	addr := func(local byte, plusInput bool) []byte {
		b := []byte{localGet, local}
		if plusInput {
			b = append(b, globalGet, 0, i64Add)
		}
		return b
	}
	// wordCheck traps (through import trap) unless the 8 bytes at the
	// 32-bit address are inside the memory.
	wordCheck := func(a []byte, trap []byte) []byte {
		b := append([]byte{}, a...)
		b = append(b, wrap, extendU, i64Const, 8, i64Add)
		b = append(b, size...)
		b = append(b, i64GtU, ifOp, 0x40)
		b = append(b, trap...)
		return append(b, unreachable, end)
	}
	byteCheck := func(results bool) []byte {
		zero := []byte{ret}
		if results {
			zero = []byte{i32Const, 0, ret}
		}
		b := []byte{localGet, 0, i64Const, 0xc0, 0x00, i64LtU, ifOp, 0x40}
		b = append(b, zero...)
		b = append(b, end, localGet, 0)
		b = append(b, size...)
		b = append(b, i64GtU, ifOp, 0x40)
		b = append(b, zero...)
		return append(b, end)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return append(out, end)
	}
	bodies := [][]byte{
		// load_u64
		cat(wordCheck(addr(0, false), []byte{localGet, 0, call, 0}), addr(0, false), []byte{wrap, i64Load, 3, 0}),
		// store_u64
		cat(wordCheck(addr(0, false), []byte{localGet, 0, localGet, 1, call, 1}), addr(0, false), []byte{wrap, localGet, 1, i64Store, 3, 0}),
		// input_load_u64
		cat(wordCheck(addr(0, true), []byte{localGet, 0, call, 0}), addr(0, true), []byte{wrap, i64Load, 3, 0}),
		// load_u8
		cat(byteCheck(true), []byte{localGet, 0, wrap, load8U, 0, 0}),
		// store_u8
		cat(byteCheck(false), []byte{localGet, 0, wrap, localGet, 1, store8, 0, 0}),
		// input_load_u8
		cat([]byte{localGet, 0, i32Const, 41, i64Load, 0, 0, i64GeU, ifOp, 0x40, i32Const, 0, ret, end},
			[]byte{i32Const, 33, i64Load, 0, 0, localGet, 0, i64Add, wrap, load8U, 0, 0}),
	}
	str := func(s string) []byte { return append(appendULEB(nil, uint64(len(s))), s...) }
	vec := func(items ...[]byte) []byte {
		out := appendULEB(nil, uint64(len(items)))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendULEB(nil, uint64(len(body)))...), body...)
	}
	// Types: 0 (i64)->i64, 1 (i64 i64)->(), 2 (i64)->i32, 3 (i64 i32)->(), 4 (i64)->().
	types := vec(
		[]byte{0x60, 1, i64, 1, i64},
		[]byte{0x60, 2, i64, i64, 0},
		[]byte{0x60, 1, i64, 1, i32},
		[]byte{0x60, 2, i64, i32, 0},
		[]byte{0x60, 1, i64, 0},
	)
	imports := vec(
		append(append(str(kmemTrapModule), str("load")...), 0x00, 4),
		append(append(str(kmemTrapModule), str("store")...), 0x00, 1),
	)
	funcs := vec([]byte{0}, []byte{1}, []byte{0}, []byte{2}, []byte{3}, []byte{2})
	names := []string{"load_u64", "store_u64", "input_load_u64", "load_u8", "store_u8", "input_load_u8"}
	exports := [][]byte{append(str("memory"), 0x02, 0), append(str("input_offset"), 0x03, 0)}
	for i, n := range names {
		exports = append(exports, append(str(n), 0x00, byte(2+i)))
	}
	code := make([][]byte, len(bodies))
	for i, b := range bodies {
		b = append([]byte{0}, b...) // no locals
		code[i] = append(appendULEB(nil, uint64(len(b))), b...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, types)...)
	m = append(m, section(2, imports)...)
	m = append(m, section(3, funcs)...)
	m = append(m, section(5, vec([]byte{0x00, kernelInitPages}))...)
	m = append(m, section(6, vec([]byte{i64, 0x01, i64Const, 0, end}))...)
	m = append(m, section(7, vec(exports...))...)
	m = append(m, section(10, vec(code...))...)
	return m
}

// buildKmem instantiates the kernel module's trap imports in rt and
// compiles the kernel module.
func buildKmem(ctx context.Context, rt wazero.Runtime) (wazero.CompiledModule, error) {
	b := rt.NewHostModuleBuilder(kmemTrapModule)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
		panic(fmt.Sprintf("could not read value at offset: %v", 0))
	}), []api.ValueType{api.ValueTypeI64}, nil).Export("load")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
		panic(fmt.Sprintf("could not write value '%v' at offset: %v", s[1], s[0]))
	}), []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}, nil).Export("store")
	if _, err := b.Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", kmemTrapModule, err)
	}
	cm, err := rt.CompileModule(ctx, kmemWasm)
	if err != nil {
		return nil, fmt.Errorf("kernel module: %w", err)
	}
	return cm, nil
}
