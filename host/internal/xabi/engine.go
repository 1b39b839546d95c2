package xabi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/bulkhead-run/bulkhead/host/internal/fuel"
	"github.com/bulkhead-run/bulkhead/host/internal/jailfs"
)

// PageSize is the size of one Wasm memory page.
const PageSize = 65536

// HostFunc is a function of a host import module. Call runs on the guest's
// goroutine; ctx carries what the caller put in the Call context. A panic in
// Call traps the guest.
type HostFunc struct {
	Module  string
	Name    string
	Params  []api.ValueType
	Results []api.ValueType
	Call    func(ctx context.Context, m Memory, stack []uint64)
}

// Memory is the view a host function has of the Extism kernel memory.
type Memory interface {
	// Read returns a copy of the block at handle h. It fails for a handle
	// that names no block.
	Read(h uint64) ([]byte, error)
	// Write allocates a block holding b and returns its handle.
	Write(b []byte) (uint64, error)
	// Free frees a block.
	Free(h uint64)
	// Input returns the call's input in place (nil outside a call).
	Input() []byte
	// View returns the block at handle h in place (nil when h names no
	// block).
	View(h uint64) []byte
	// AllocView allocates a block of n bytes and returns its handle and
	// its bytes in place (0 and nil when the memory is full).
	AllocView(n uint64) (uint64, []byte)
	// Guest returns the guest's own linear memory (nil outside a call).
	Guest() api.Memory
}

// Config is what Compile needs.
type Config struct {
	Wasm         []byte
	MemoryPages  uint32 // 0 = wazero's default (4 GiB)
	AllowedHosts []string
	// AllowedPaths maps a host directory ("ro:" prefix = read-only) to the
	// guest path it is mounted at. Each mount is a jailfs.FS.
	AllowedPaths map[string]string
	Config       map[string]string
	HostFuncs    []HostFunc
	Cache        wazero.CompilationCache // may be nil
	// Fuel meters the guest: the module is instrumented (see
	// host/internal/fuel) and its runtime runs without close-on-context-done;
	// the refill host function checks the call's context and CPU budget.
	Fuel bool
	// FuelFallback lets a module the rewriter cannot meter run with
	// close-on-context-done instead of being refused.
	FuelFallback bool
	// FuelCacheDir keeps instrumented modules on disk ("" = no cache).
	FuelCacheDir string
	// MaxStack bounds a metered module's call stack, in bytes as the fuel
	// rewriter charges frames (0 = fuel.DefaultMaxStack). An unmetered
	// module overflows at wazero's own limit.
	MaxStack int64
	// Log receives guest log lines of the instance that logged them.
	Log func(inst *Instance, level LogLevel, msg string)
	// Native selects the native engine; false selects go-sdk.
	Native bool
	// HTTPClient sends guests' HTTP requests (nil: guests' requests trap).
	HTTPClient *http.Client
	// MaxHTTPResponse caps a response body (0 = DefaultMaxHTTPResponse).
	MaxHTTPResponse int64
	// Sleep, when set, implements the guest's sleep (WASI poll_oneoff on a
	// clock) so that a call's cancellation can cut it short.
	Sleep func(inst *Instance, d time.Duration)
}

// LogLevel is the level of a guest log line.
type LogLevel int

// Guest log levels, as go-sdk numbers them.
const (
	LogLevelTrace LogLevel = iota + 1
	LogLevelDebug
	LogLevelInfo
	LogLevelWarn
	LogLevelError
)

// Module is a compiled plugin version. It is safe for concurrent use;
// instances are not.
type Module struct {
	cp      *extism.CompiledPlugin
	nat     *nativeModule
	cfg     Config
	exports map[string]bool
	metered bool
	// unmetered says why a module asked to be metered is not.
	unmetered string
}

var setLogLevel sync.Once

// Compile validates and compiles wasm.
func Compile(ctx context.Context, cfg Config) (*Module, error) {
	if err := checkMagic(cfg.Wasm); err != nil {
		return nil, err
	}
	wasm := cfg.Wasm
	var metered bool
	var unmetered string
	if cfg.Fuel {
		inst, err := instrument(cfg.Wasm, cfg.FuelCacheDir, cfg.MaxStack)
		var ue *fuel.UnsupportedError
		switch {
		case err == nil:
			wasm, metered = inst, true
		case cfg.FuelFallback && errors.As(err, &ue):
			unmetered = err.Error()
		case errors.Is(err, fuel.ErrMalformed):
			return nil, fmt.Errorf("not a valid WebAssembly module (%s)", strings.TrimPrefix(err.Error(), fuel.ErrMalformed.Error()+": "))
		default:
			return nil, fmt.Errorf("cpu metering: %w", err)
		}
	}
	if err := checkMounts(cfg.AllowedPaths); err != nil {
		return nil, err
	}
	// Validate and compile first, with the plugin runtime's configuration:
	// go-sdk's own compilation below then comes from the cache.
	exports, err := listExports(ctx, wasm, cfg.Cache, !metered, cfg.MemoryPages)
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(!metered)
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	hostFuncs := cfg.HostFuncs
	if metered {
		hostFuncs = append(hostFuncs[:len(hostFuncs):len(hostFuncs)], refillFunc)
	}
	if cfg.Native {
		nm, err := compileNative(ctx, cfg, wasm, metered, hostFuncs)
		if err != nil {
			return nil, err
		}
		cfg.Wasm = nil
		return &Module{nat: nm, cfg: cfg, exports: exports, metered: metered, unmetered: unmetered}, nil
	}
	// Extism filters guest logs by a process-wide level, and sends the
	// trace lines it writes while instantiating to the standard logger
	// before an instance's own logger can be set. Debug lets every guest
	// line but trace through; the host's logger filters the rest.
	setLogLevel.Do(func() { extism.SetLogLevel(extism.LogLevelDebug) })
	// go-sdk sends http_request through http.DefaultClient: the module's
	// HTTP imports go to functions of this package instead.
	if wasm, err = renameImports(wasm, EnvModule, httpFuncs, httpModule); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	hostFuncs = append(hostFuncs[:len(hostFuncs):len(hostFuncs)], extismHTTPFuncs(&cfg)...)
	funcs := make([]extism.HostFunction, 0, len(cfg.HostFuncs))
	for _, hf := range hostFuncs {
		call := hf.Call
		f := extism.NewHostFunctionWithStack(hf.Name, func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
			call(ctx, kernelMemory{p: p, ctx: ctx}, stack)
		}, hf.Params, hf.Results)
		f.SetNamespace(hf.Module)
		funcs = append(funcs, f)
	}
	mem := &extism.ManifestMemory{MaxPages: cfg.MemoryPages, MaxHttpResponseBytes: -1, MaxVarBytes: -1}
	m := extism.Manifest{
		Wasm:         []extism.Wasm{extism.WasmData{Data: wasm, Name: "main"}},
		Memory:       mem,
		Config:       cfg.Config,
		AllowedHosts: cfg.AllowedHosts,
		// No AllowedPaths: go-sdk would mount them with wazero's directory
		// mounts, which follow symbolic links out of the directory.
		// Instantiate mounts jailfs file systems instead.
	}
	cp, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{RuntimeConfig: rc, EnableWasi: true}, funcs)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	cfg.Wasm = nil
	return &Module{cp: cp, cfg: cfg, exports: exports, metered: metered, unmetered: unmetered}, nil
}

// checkMagic gives a plain answer for files that are not Wasm at all.
func checkMagic(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("not a WebAssembly module: %d bytes is too short", len(b))
	}
	if !bytes.Equal(b[:4], []byte("\x00asm")) {
		return errors.New("not a WebAssembly module: bad magic number")
	}
	return nil
}

// listExports reads the exported function names without instantiating.
func listExports(ctx context.Context, wasm []byte, cache wazero.CompilationCache, closeOnDone bool, memoryPages uint32) (map[string]bool, error) {
	// The same configuration as the plugin's runtime, so the compiled code
	// comes from the cache instead of a second compilation. The memory
	// limit refuses a module whose memory starts above the cap (the native
	// engine's runtime has no limit: it enforces the cap itself).
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone)
	if memoryPages > 0 {
		rc = rc.WithMemoryLimitPages(memoryPages)
	}
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	out := make(map[string]bool)
	for name := range cm.ExportedFunctions() {
		out[name] = true
	}

	return out, nil
}

// Metered reports whether the module meters its own fuel.
func (m *Module) Metered() bool { return m.metered }

// Unmetered says why a module that was to be metered runs with
// close-on-context-done instead ("" when metered or not asked to be).
func (m *Module) Unmetered() string { return m.unmetered }

// HasExport reports whether the module exports a function called name.
func (m *Module) HasExport(name string) bool { return m.exports[name] }

// Close frees the compiled code. Instances must be closed first.
func (m *Module) Close(ctx context.Context) error {
	if m.nat != nil {
		return m.nat.close(ctx)
	}
	return m.cp.Close(ctx)
}

// Native reports whether the module runs on the native engine.
func (m *Module) Native() bool { return m.nat != nil }

// Instance is one instantiation of a Module. It serves one call at a time.
type Instance struct {
	p    *extism.Plugin
	nat  *nativeInstance
	http httpState // the go-sdk engine's guest HTTP
	// guest is the go-sdk engine's guest module (for bulk transfer).
	guest  api.Module
	mounts []*jailfs.FS
	stderr *tail
	// Tag is free for the owner of the instance (the host keeps the
	// current call's state there for log lines).
	Tag any
}

// Instantiate creates an instance with real clocks, real randomness, no
// environment and no arguments; its stdout is dropped and the tail of its
// stderr kept for error messages.
func (m *Module) Instantiate(ctx context.Context) (*Instance, error) {
	stderr := &tail{max: 4096}
	var inst *Instance
	sleep := func(ns int64) { time.Sleep(time.Duration(ns)) }
	if m.cfg.Sleep != nil {
		sleepf := m.cfg.Sleep
		sleep = func(ns int64) { sleepf(inst, time.Duration(ns)) }
	}
	mc := newModuleConfig(sleep, stderr)
	if m.nat != nil {
		mounts, fsc, err := openMounts(m.cfg.AllowedPaths)
		if err != nil {
			return nil, err
		}
		if fsc != nil {
			mc = mc.WithFSConfig(fsc)
		}
		inst = &Instance{mounts: mounts, stderr: stderr}
		if err := m.nat.instantiate(ctx, m, inst, mc); err != nil {
			closeMounts(mounts)
			return nil, err
		}
		return inst, nil
	}
	if m.metered {
		// A module's start section runs while it is instantiated, outside
		// any call, and a metered one calls refill from it. go-sdk refuses
		// host calls whose context has no plugin; refill needs none, so give
		// it an empty one. Other host functions still trap there.
		ctx = context.WithValue(ctx, extism.PluginCtxKey("plugin"), (*extism.Plugin)(nil))
	}
	mounts, fsc, err := openMounts(m.cfg.AllowedPaths)
	if err != nil {
		return nil, err
	}
	if fsc != nil {
		mc = mc.WithFSConfig(fsc)
	}
	p, err := m.cp.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: mc})
	if err != nil {
		closeMounts(mounts)
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst = &Instance{p: p, mounts: mounts, stderr: stderr, guest: mainModule(p)}
	if m.cfg.Log != nil {
		logf := m.cfg.Log
		p.SetLogger(func(level extism.LogLevel, msg string) {
			if level == extism.LogLevelDebug && isSDKMessage(msg) {
				return
			}
			logf(inst, LogLevel(level), msg)
		})
	} else {
		p.SetLogger(func(extism.LogLevel, string) {})
	}
	return inst, nil
}

// Result is what a call returned.
type Result struct {
	Code   uint32
	Output []byte
	// Err is the message the guest set with error_set, or "".
	Err string
	// Exit is set when the guest exited (proc_exit) or was closed.
	Exit *sys.ExitError
	// Trap is set when the guest trapped or a host function failed.
	Trap error
}

// Call runs export fn with input. The instance must be discarded after a
// Result with Exit or Trap set.
func (i *Instance) Call(ctx context.Context, fn string, input []byte) Result {
	i.stderr.Reset()
	var rc uint32
	var out []byte
	var err error
	if i.nat != nil {
		rc, out, err = i.nativeCall(ctx, fn, input)
		if errors.Is(err, ErrKernelMemory) {
			return Result{Code: rc, Trap: err}
		}
	} else {
		rc, out, err = i.p.CallWithContext(&instanceCtx{Context: ctx, inst: i}, fn, input)
	}
	res := Result{Code: rc, Output: out}
	if err == nil {
		return res
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		res.Exit = exit
		return res
	}
	if rc != 0 && len(out) == 0 && isGuestMessage(i, err) {
		res.Err = err.Error()
		return res
	}
	res.Trap = err
	return res
}

// isGuestMessage reports whether err is the message the guest set with
// error_set (go-sdk returns it as a plain error) rather than a trap.
func isGuestMessage(i *Instance, err error) bool {
	if i.nat != nil {
		_, ok := err.(guestMessage)
		return ok
	}
	if i.p.Module() == nil {
		return false
	}
	msg := i.p.GetError()
	return msg != "" && msg == err.Error()
}

// Stderr returns the tail of what the guest wrote to stderr in the last call.
func (i *Instance) Stderr() string { return i.stderr.String() }

// MemoryBytes returns the size of the Extism kernel memory, the one memory
// go-sdk exposes (the native engine reports the same one, so the host's
// memory-cap guess for unmetered modules is the same on both).
func (i *Instance) MemoryBytes() uint64 {
	if i.nat != nil {
		return i.nat.k.size()
	}
	if mem := i.p.Memory(); mem != nil {
		return uint64(mem.Size())
	}
	return 0
}

// Close frees the instance.
func (i *Instance) Close(ctx context.Context) error {
	var err error
	if i.nat != nil {
		err = errors.Join(i.nat.mod.Close(ctx), i.nat.kmod.Close(ctx))
	} else {
		err = i.p.Close(ctx)
	}
	closeMounts(i.mounts)
	return err
}

// checkMounts opens and closes every allowed directory, so a missing one
// fails the load rather than each instantiation.
func checkMounts(paths map[string]string) error {
	mounts, _, err := openMounts(paths)
	closeMounts(mounts)
	return err
}

// openMounts opens one jailfs.FS per allowed path and the wazero file
// system configuration that mounts them (nil when there are none).
func openMounts(paths map[string]string) ([]*jailfs.FS, wazero.FSConfig, error) {
	if len(paths) == 0 {
		return nil, nil, nil
	}
	hostDirs := make([]string, 0, len(paths))
	for d := range paths {
		hostDirs = append(hostDirs, d)
	}
	sort.Strings(hostDirs)
	fsc := wazero.NewFSConfig()
	mounts := make([]*jailfs.FS, 0, len(paths))
	for _, d := range hostDirs {
		dir, ro := strings.CutPrefix(d, "ro:")
		j, err := jailfs.Open(dir, ro)
		if err != nil {
			closeMounts(mounts)
			return nil, nil, fmt.Errorf("allowed path: %w", err)
		}
		mounts = append(mounts, j)
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(j, paths[d])
	}
	return mounts, fsc, nil
}

func closeMounts(mounts []*jailfs.FS) {
	for _, j := range mounts {
		_ = j.Close()
	}
}

// kernelMemory adapts go-sdk's CurrentPlugin to Memory.
type kernelMemory struct {
	p   *extism.CurrentPlugin
	ctx context.Context
}

func (k kernelMemory) Input() []byte {
	off, ok := k.ctx.Value(extism.InputOffsetKey("inputOffset")).(uint64)
	if !ok {
		return nil
	}
	return k.View(off)
}

func (k kernelMemory) View(h uint64) []byte {
	n, err := k.p.Length(h)
	if err != nil || n == 0 {
		return nil
	}
	b, _ := k.p.Memory().Read(uint32(h), uint32(n))
	return b
}

func (k kernelMemory) AllocView(n uint64) (uint64, []byte) {
	h, err := k.p.Alloc(n)
	if err != nil || h == 0 {
		return 0, nil
	}
	b, ok := k.p.Memory().Read(uint32(h), uint32(n))
	if !ok {
		return 0, nil
	}
	return h, b
}

func (k kernelMemory) Guest() api.Memory {
	if i, _ := k.ctx.Value(instanceKey{}).(*Instance); i != nil && i.guest != nil {
		return i.guest.Memory()
	}
	return nil
}

func (k kernelMemory) Read(h uint64) ([]byte, error) {
	if h == 0 {
		return nil, errors.New("null handle")
	}
	n, err := k.p.Length(h)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("handle %#x names no memory block", h)
	}
	return k.p.ReadBytes(h)
}

func (k kernelMemory) Write(b []byte) (uint64, error) { return k.p.WriteBytes(b) }

func (k kernelMemory) Free(h uint64) { _ = k.p.Free(h) }

func (k kernelMemory) readBytes(h uint64) ([]byte, error) { return k.p.ReadBytes(h) }
func (k kernelMemory) write(b []byte) (uint64, error)     { return k.p.WriteBytes(b) }
func (k kernelMemory) free(h uint64)                      { _ = k.p.Free(h) }

// KernelFull reports whether a kernel allocation failed in the last call
// (native engine only; go-sdk does not say).
func (i *Instance) KernelFull() bool { return i.nat != nil && i.nat.kernelFull }

// GrowRefused reports whether the memory cap refused a memory.grow of the
// guest in the last call (native engine only; go-sdk does not say).
func (i *Instance) GrowRefused() bool { return i.nat != nil && i.nat.growRefused }

// extismHTTPFuncs serve the go-sdk engine's renamed HTTP imports.
func extismHTTPFuncs(cfg *Config) []HostFunc {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	inst := func(ctx context.Context) *Instance {
		i, _ := ctx.Value(instanceKey{}).(*Instance)
		if i == nil {
			panic(errors.New("engine: an Extism host function was called outside a call"))
		}
		return i
	}
	return []HostFunc{
		{Module: httpModule, Name: "http_request", Params: []api.ValueType{i64, i64}, Results: []api.ValueType{i64},
			Call: func(ctx context.Context, m Memory, s []uint64) {
				s[0] = httpRequest(ctx, m.(kernelMemory), &inst(ctx).http, cfg, s[0], s[1])
			}},
		{Module: httpModule, Name: "http_status_code", Results: []api.ValueType{i32},
			Call: func(ctx context.Context, _ Memory, s []uint64) { s[0] = api.EncodeI32(int32(inst(ctx).http.status)) }},
		{Module: httpModule, Name: "http_headers", Results: []api.ValueType{i64},
			Call: func(ctx context.Context, m Memory, s []uint64) { s[0] = httpHeaders(m.(kernelMemory), &inst(ctx).http) }},
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
	// written is set by Write, so that Reset, once per call, takes the
	// lock only after the guest wrote something.
	written atomic.Bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.written.Store(true)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) Reset() {
	if !t.written.Load() {
		return
	}
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.written.Store(false)
	t.mu.Unlock()
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Exports lists the module's exported functions, sorted.
func (m *Module) Exports() []string {
	out := make([]string, 0, len(m.exports))
	for name := range m.exports {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// isSDKMessage reports whether a debug line comes from go-sdk itself rather
// than from the guest.
func isSDKMessage(msg string) bool {
	return strings.HasPrefix(msg, "Calling function : ") || strings.HasPrefix(msg, "Initializing runtime for ") ||
		strings.HasPrefix(msg, "Calling _initialize") || strings.HasPrefix(msg, "Calling hs_init")
}

// mainModule returns the guest module of a go-sdk plugin, which go-sdk
// keeps unexported; the bulk transfer host functions need its memory. A
// test fails if a go-sdk upgrade renames the field.
func mainModule(p *extism.Plugin) api.Module {
	f := reflect.ValueOf(p).Elem().FieldByName("mainModule")
	if !f.IsValid() {
		return nil
	}
	m, _ := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(api.Module)
	return m
}
