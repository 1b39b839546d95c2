package xabi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// The native engine runs a module on wazero with the Extism ABI implemented
// here: one runtime per Module holding WASI, the "extism:host/env" module
// (the kernel in Go, see kernel.go, vars, config, logs, HTTP) and the
// host's own host modules; one guest module per Instance, with its own
// kernel memory. Host functions find their instance through the call's
// context (instanceCtx), so a call costs one wazero call plus the guest's
// host calls.

// EnvModule is the import module of the Extism ABI.
const EnvModule = "extism:host/env"

// ErrKernelMemory is the trap of a call whose input does not fit the
// kernel memory under the plugin's memory cap.
var ErrKernelMemory = errors.New("kernel memory full: the input does not fit under the memory cap")

type nativeModule struct {
	rt wazero.Runtime
	cm wazero.CompiledModule
	// kcm is the kernel's Wasm module (kmem.go).
	kcm wazero.CompiledModule
}

type nativeInstance struct {
	mod api.Module
	// kmod is the instance's kernel module (kmem.go), inputGlobal its
	// input_offset.
	kmod        api.Module
	inputGlobal api.MutableGlobal
	k           *kernel
	vars        map[string][]byte
	// inputOffset is the handle of the call's input (go-sdk's
	// input_load_u64 reads from it).
	inputOffset uint64
	fns         map[string]export
	// ictx and stack serve every call of the instance (one at a time).
	ictx    *instanceCtx
	stack   [1]uint64
	metered bool
	http    httpState
	// kernelFull records that a kernel allocation failed during the call,
	// growRefused that the memory cap refused a grow of the guest's memory.
	kernelFull, growRefused bool
	// inits start the guest's runtime before its first call.
	inits       []api.Function
	initialized bool
}

// instanceKey finds the native instance of a call in its context.
type instanceKey struct{}

// instanceCtx is the context of a native call: the caller's, plus the
// instance its host functions work on.
type instanceCtx struct {
	context.Context
	inst *Instance
	// watched is set once Done was asked for: whoever asked may hold the
	// context past the call (net/http does), so it is not reused.
	watched atomic.Bool
}

func (c *instanceCtx) Done() <-chan struct{} {
	c.watched.Store(true)
	return c.Context.Done()
}

func (c *instanceCtx) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	return c.Context.Value(key)
}

func nativeFrom(ctx context.Context) *Instance {
	if c, ok := ctx.(*instanceCtx); ok {
		return c.inst
	}
	i, _ := ctx.Value(instanceKey{}).(*Instance)
	if i == nil || i.nat == nil {
		panic(errors.New("engine: an Extism host function was called outside a call"))
	}
	return i
}

func compileNative(ctx context.Context, cfg Config, wasm []byte, metered bool, hostFuncs []HostFunc) (*nativeModule, error) {
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(!metered)
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	// No memory limit on the runtime: wazero would refuse a grow past it
	// without telling anyone. Each guest memory is allocated by capMemory,
	// which enforces the cap and records a refusal; the kernel's memory is
	// bounded by the kernel.
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*nativeModule, error) {
		_ = rt.Close(ctx)
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(fmt.Errorf("wasi: %w", err))
	}
	if err := buildEnv(ctx, rt, &cfg); err != nil {
		return fail(err)
	}
	mods := map[string][]HostFunc{}
	var order []string
	for _, hf := range hostFuncs {
		if _, ok := mods[hf.Module]; !ok {
			order = append(order, hf.Module)
		}
		mods[hf.Module] = append(mods[hf.Module], hf)
	}
	for _, name := range order {
		b := rt.NewHostModuleBuilder(name)
		for _, hf := range mods[name] {
			call := hf.Call
			b.NewFunctionBuilder().WithGoFunction(api.GoFunc(func(ctx context.Context, stack []uint64) {
				var m Memory = noMemory{}
				if i, ok := ctx.Value(instanceKey{}).(*Instance); ok && i != nil {
					m = i.nat
				}
				call(ctx, m, stack)
			}), hf.Params, hf.Results).Export(hf.Name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fail(fmt.Errorf("host module %s: %w", name, err))
		}
	}
	kcm, err := buildKmem(ctx, rt)
	if err != nil {
		return fail(err)
	}
	if wasm, err = renameImports(wasm, EnvModule, kmemFuncs, kmemModule); err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	return &nativeModule{rt: rt, cm: cm, kcm: kcm}, nil
}

// noMemory is the memory of a host function called outside any instance
// (a start section): every access fails.
type noMemory struct{}

func (noMemory) Read(uint64) ([]byte, error) {
	return nil, errors.New("no kernel memory outside a call")
}
func (noMemory) Write([]byte) (uint64, error) {
	return 0, errors.New("no kernel memory outside a call")
}
func (noMemory) Free(uint64)                       {}
func (noMemory) Input() []byte                     { return nil }
func (noMemory) View(uint64) []byte                { return nil }
func (noMemory) AllocView(uint64) (uint64, []byte) { return 0, nil }
func (noMemory) Guest() api.Memory                 { return nil }

// Read, Write and Free make a native instance the Memory of bulkhead's
// host functions.
func (n *nativeInstance) Read(h uint64) ([]byte, error) {
	if h == 0 {
		return nil, errors.New("null handle")
	}
	if n.k.length(h) == 0 {
		return nil, fmt.Errorf("handle %#x names no memory block", h)
	}
	return n.k.read(h)
}

func (n *nativeInstance) Write(b []byte) (uint64, error) { return n.write(b) }

func (n *nativeInstance) Free(h uint64) { n.k.free(h) }

func (n *nativeInstance) Input() []byte { return n.View(n.inputOffset) }

func (n *nativeInstance) View(h uint64) []byte {
	l := n.k.length(h)
	a := uint64(uint32(h))
	if l == 0 || !n.k.inMem(a, l) {
		return nil
	}
	return n.k.view(a, l)
}

func (n *nativeInstance) AllocView(size uint64) (uint64, []byte) {
	h := n.alloc(size)
	if h == 0 || !n.k.inMem(h, size) {
		return 0, nil
	}
	return h, n.k.bytesAt(h, size)
}

func (n *nativeInstance) Guest() api.Memory { return n.mod.Memory() }

func (n *nativeInstance) readBytes(h uint64) ([]byte, error) { return n.k.read(h) }

func (n *nativeInstance) write(b []byte) (uint64, error) {
	h, err := n.k.write(b)
	if h == 0 && len(b) > 0 {
		n.kernelFull = true
	}
	return h, err
}

func (n *nativeInstance) free(h uint64) { n.k.free(h) }

func (n *nativeInstance) alloc(size uint64) uint64 {
	h := n.k.alloc(size)
	if h == 0 && size > 0 {
		n.kernelFull = true
	}
	return h
}

// buildEnv instantiates "extism:host/env" in rt.
func buildEnv(ctx context.Context, rt wazero.Runtime, cfg *Config) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := rt.NewHostModuleBuilder(EnvModule)
	fn := func(name string, params, results []api.ValueType, f func(n *nativeInstance, i *Instance, ctx context.Context, stack []uint64)) {
		b.NewFunctionBuilder().WithGoFunction(api.GoFunc(func(ctx context.Context, stack []uint64) {
			i := nativeFrom(ctx)
			f(i.nat, i, ctx, stack)
		}), params, results).Export(name)
	}
	none := []api.ValueType{}
	// load_u8, store_u8, load_u64, store_u64, input_load_u8 and
	// input_load_u64 are Wasm functions of the kernel module (kmem.go).
	fn("alloc", []api.ValueType{i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.alloc(s[0])
	})
	fn("free", []api.ValueType{i64}, none, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) { n.k.free(s[0]) })
	fn("length", []api.ValueType{i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.length(s[0])
	})
	fn("length_unsafe", []api.ValueType{i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.lengthUnsafe(s[0])
	})
	fn("input_length", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offInputLength)
	})
	fn("input_offset", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offInputOffset)
	})
	fn("input_set", []api.ValueType{i64, i64}, none, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		n.k.inputSet(s[0], s[1])
	})
	fn("output_set", []api.ValueType{i64, i64}, none, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		n.k.outputSet(s[0], s[1])
	})
	fn("output_length", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offOutputLen)
	})
	fn("output_offset", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offOutputOff)
	})
	fn("reset", none, none, func(n *nativeInstance, _ *Instance, _ context.Context, _ []uint64) { n.k.reset() })
	fn("error_set", []api.ValueType{i64}, none, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		n.k.errorSet(s[0])
	})
	fn("error_get", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offError)
	})
	fn("memory_bytes", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = n.k.field(offLength)
	})
	fn("config_get", []api.ValueType{i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		name, err := n.k.read(s[0])
		if err != nil {
			panic(fmt.Errorf("failed to read config name from memory: %v", err))
		}
		v, ok := cfg.Config[string(name)]
		if !ok {
			s[0] = 0
			return
		}
		h, err := n.write([]byte(v))
		if err != nil {
			panic(fmt.Errorf("failed to write config value to memory: %v", err))
		}
		s[0] = h
	})
	fn("var_get", []api.ValueType{i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		name, err := n.k.read(s[0])
		if err != nil {
			panic(fmt.Errorf("failed to read var name from memory: %v", err))
		}
		n.k.free(s[0])
		v, ok := n.vars[string(name)]
		if !ok {
			s[0] = 0
			return
		}
		h, err := n.write(v)
		if err != nil {
			panic(fmt.Errorf("failed to write var value to memory: %v", err))
		}
		s[0] = h
	})
	fn("var_set", []api.ValueType{i64, i64}, none, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		n.varSet(s[0], s[1])
	})
	fn("http_request", []api.ValueType{i64, i64}, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, ctx context.Context, s []uint64) {
		s[0] = httpRequest(ctx, n, &n.http, cfg, s[0], s[1])
	})
	fn("http_status_code", none, []api.ValueType{i32}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = api.EncodeI32(int32(n.http.status))
	})
	fn("http_headers", none, []api.ValueType{i64}, func(n *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		s[0] = httpHeaders(n, &n.http)
	})
	fn("get_log_level", none, []api.ValueType{i32}, func(_ *nativeInstance, _ *Instance, _ context.Context, s []uint64) {
		// Levels run from 0 (trace) to 4 (error). The native engine passes
		// every level on; the host's logger filters.
		s[0] = 0
	})
	logFn := func(name string, level LogLevel) {
		fn(name, []api.ValueType{i64}, none, func(n *nativeInstance, i *Instance, _ context.Context, s []uint64) {
			msg, err := n.k.read(s[0])
			if err != nil {
				panic(fmt.Errorf("failed to read log message from memory: %v", err))
			}
			if cfg.Log != nil {
				cfg.Log(i, level, unsafe.String(unsafe.SliceData(msg), len(msg)))
			}
			n.k.free(s[0])
		})
	}
	logFn("log_trace", LogLevelTrace)
	logFn("log_debug", LogLevelDebug)
	logFn("log_info", LogLevelInfo)
	logFn("log_warn", LogLevelWarn)
	logFn("log_error", LogLevelError)
	_, err := b.Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvModule, err)
	}
	return nil
}

// maxVarBytes is go-sdk's default bound on an instance's vars.
const maxVarBytes = 1 << 20

// varSet is go-sdk's var_set: a zero value handle deletes; a store over
// maxVarBytes (counting go-sdk's per-entry overhead) traps.
func (n *nativeInstance) varSet(kh, vh uint64) {
	name, err := n.k.read(kh)
	if err != nil {
		panic(fmt.Errorf("failed to read var name from memory: %v", err))
	}
	n.k.free(kh)
	if vh == 0 {
		delete(n.vars, string(name))
		return
	}
	value, err := n.k.read(vh)
	if err != nil {
		panic(fmt.Errorf("failed to read var value from memory: %v", err))
	}
	n.k.free(vh)
	const entry = int(unsafe.Sizeof([]byte{}) + unsafe.Sizeof(""))
	size := entry + len(name) + len(value)
	for k, v := range n.vars {
		size += len(k) + len(v) + entry
	}
	if size >= maxVarBytes {
		panic("Variable store is full")
	}
	n.vars[string(name)] = value
}

func (m *nativeModule) instantiate(ctx context.Context, mod *Module, inst *Instance, mc wazero.ModuleConfig) error {
	n := &nativeInstance{k: newKernel(mod.cfg.MemoryPages), vars: map[string][]byte{}, fns: map[string]export{}, metered: mod.metered}
	inst.nat = n
	km, err := m.rt.InstantiateModule(ctx, m.kcm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return fmt.Errorf("instantiate the kernel: %w", err)
	}
	n.kmod = km
	n.k.attach(km.Memory())
	n.inputGlobal, _ = km.ExportedGlobal("input_offset").(api.MutableGlobal)
	if n.inputGlobal == nil {
		_ = km.Close(ctx)
		return errors.New("instantiate the kernel: no input_offset global")
	}
	ictx := &instanceCtx{Context: ctx, inst: inst}
	rctx := experimental.WithImportResolver(ictx, func(name string) api.Module {
		if name == kmemModule {
			return km
		}
		return nil
	})
	if limit := uint64(mod.cfg.MemoryPages) * PageSize; limit > 0 {
		rctx = experimental.WithMemoryAllocator(rctx, experimental.MemoryAllocatorFunc(func(c, _ uint64) experimental.LinearMemory {
			return &capMemory{buf: make([]byte, 0, min(c, limit)), limit: limit, refused: &n.growRefused}
		}))
	}
	gm, err := m.rt.InstantiateModule(rctx, m.cm, mc.WithStartFunctions().WithName(""))
	if err != nil {
		_ = km.Close(ctx)
		return fmt.Errorf("instantiate: %w", err)
	}
	n.mod = gm
	// The guest's runtime starts as go-sdk starts it, inside the first
	// call: a Haskell module's hs_init (after _initialize), else a WASI
	// reactor's _initialize, else a command's __wasm_call_ctors.
	var inits []api.Function
	if hs := gm.ExportedFunction("hs_init"); hs != nil {
		if f := gm.ExportedFunction("_initialize"); f != nil {
			inits = append(inits, f)
		}
		inits = append(inits, hs)
	} else if f := noParams(gm, "_initialize"); f != nil {
		inits = append(inits, f)
	} else if f := noParams(gm, "__wasm_call_ctors"); f != nil {
		inits = append(inits, f)
	}
	n.inits = inits
	return nil
}

func noParams(m api.Module, name string) api.Function {
	f := m.ExportedFunction(name)
	if f == nil || len(f.Definition().ParamTypes()) != 0 {
		return nil
	}
	return f
}

// call runs export fn as go-sdk's CallWithContext does: reset the kernel,
// set the input, call, then read the error and the output; it returns the
// same return code, output and error.
func (i *Instance) nativeCall(ctx context.Context, fn string, input []byte) (uint32, []byte, error) {
	n := i.nat
	if n.mod.IsClosed() {
		return 0, nil, errors.New("module is closed")
	}
	n.kernelFull, n.growRefused = false, false
	n.k.reset()
	h := n.alloc(uint64(len(input)))
	if h == 0 && len(input) > 0 {
		return 1, nil, ErrKernelMemory
	}
	copy(n.k.bytesAt(h, uint64(len(input))), input)
	n.k.inputSet(h, uint64(len(input)))
	n.inputOffset = h
	n.inputGlobal.Set(h)
	ex, ok := n.fns[fn]
	if !ok {
		f := n.mod.ExportedFunction(fn)
		if f == nil {
			return 1, []byte{}, fmt.Errorf("unknown function: %s", fn)
		}
		d := f.Definition()
		if r := len(d.ResultTypes()); r > 1 {
			return 1, []byte{}, fmt.Errorf("function %s has %v results, expected 0 or 1", fn, r)
		}
		ex = export{f: f, params: len(d.ParamTypes()) > 0, result: len(d.ResultTypes()) > 0}
		n.fns[fn] = ex
	}
	f := ex.f
	// The instance serves one call at a time, so a metered one reuses its
	// context wrapper, which drops the caller's context when the call
	// returns. An unmetered one runs with wazero's close-on-context-done,
	// whose goroutine may still read the context after the call: it gets
	// a wrapper of its own.
	var ictx *instanceCtx
	if n.metered {
		if n.ictx == nil {
			n.ictx = new(instanceCtx)
		}
		ictx = n.ictx
		ictx.Context, ictx.inst = ctx, i
		defer func() {
			if ictx.watched.Load() {
				n.ictx = nil // left to whoever still holds it
			} else {
				ictx.Context = nil
			}
		}()
	} else {
		ictx = &instanceCtx{Context: ctx, inst: i}
	}
	if !n.initialized && fn != "_start" && fn != "_initialize" {
		for _, init := range n.inits {
			args := make([]uint64, len(init.Definition().ParamTypes()))
			if _, err := init.Call(ictx, args...); err != nil {
				return 1, []byte{}, fmt.Errorf("failed to initialize runtime: %v", err)
			}
		}
		n.initialized = true
	}
	stack := n.stack[:]
	stack[0] = 0
	var err error
	if !ex.params {
		err = f.CallWithStack(ictx, stack)
	} else {
		// wazero's own message for the missing arguments, as go-sdk gets.
		_, err = f.Call(ictx)
	}
	var rc uint32
	hasResult := ex.result && err == nil
	if exit, ok := err.(*sys.ExitError); ok {
		if exit.ExitCode() == 0 {
			err = nil
		}
		if !hasResult {
			stack[0], hasResult = api.EncodeU32(exit.ExitCode()), true
		}
	}
	switch {
	case hasResult:
		rc = api.DecodeU32(stack[0])
	case err != nil:
		rc = 1
	}
	if err != nil {
		return rc, []byte{}, err
	}
	var guestErr error
	if eh := n.k.field(offError); eh != 0 {
		if b, err := n.k.read(eh); err == nil && len(b) > 0 {
			guestErr = guestMessage(b)
		}
	}
	off, length := n.k.field(offOutputOff), n.k.field(offOutputLen)
	out := []byte{}
	if a := uint64(uint32(off)); n.k.inMem(a, length) {
		out = make([]byte, length)
		copy(out, n.k.view(a, length))
	}
	return rc, out, guestErr
}

// export is an export of the guest, as a call needs it.
type export struct {
	f      api.Function
	params bool // it takes parameters (a call passes none: wazero refuses it)
	result bool // it returns a value (the return code)
}

// guestMessage is the error a guest set with error_set.
type guestMessage string

func (g guestMessage) Error() string { return string(g) }

func (m *nativeModule) close(ctx context.Context) error { return m.rt.Close(ctx) }

// newModuleConfig is the module configuration of every instance: real
// clocks, real randomness, no environment and no arguments; stdout dropped,
// stderr kept in tail.
func newModuleConfig(sleep func(int64), stderr io.Writer) wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithSysWalltime().WithSysNanotime().WithNanosleep(sleep).
		WithRandSource(rand.Reader).
		WithStdout(io.Discard).WithStderr(stderr)
}

// capMemory backs a guest's linear memory under the memory cap: a grow
// past limit fails (memory.grow returns -1 to the guest) and is recorded,
// so a call that hit the cap is told apart exactly, metered or not.
type capMemory struct {
	buf     []byte
	limit   uint64
	refused *bool // set on the goroutine running the guest
}

func (m *capMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		*m.refused = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow as append does, within the cap.
	c := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

func (m *capMemory) Free() { m.buf = nil }
