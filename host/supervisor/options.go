package supervisor

import (
	"log/slog"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// Defaults of the options.
const (
	DefaultTrapThreshold = 5
	DefaultTrapWindow    = 10 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultDrainTimeout  = 30 * time.Second
)

// Option configures a Supervisor.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger        *slog.Logger
	regOpts       []plugins.Option
	defaultPolicy resilience.Policy
	trapThreshold int
	trapWindow    time.Duration
	backoffMin    time.Duration
	backoffMax    time.Duration
	drain         time.Duration
	onChange      func(name string, removed bool)
	onLoad        func(plugin, version string, wasm []byte, m abi.Manifest)
}

// WithLogger sets the logger; nil discards. Every load, refusal, rebuild
// and unload is logged with its cause.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithRegistryOptions passes options (debounce, rescan interval, …) to
// the plugins.Registry the supervisor creates. Its handler, policy
// validator and logger are the supervisor's own and cannot be replaced.
func WithRegistryOptions(opts ...plugins.Option) Option {
	return optionFunc(func(o *options) { o.regOpts = append(o.regOpts, opts...) })
}

// WithDefaultPolicy sets the resilience policy of plugins whose manifest
// names no preset (default: the zero Policy, which means the documented
// defaults). The inline policy section is laid over it.
func WithDefaultPolicy(p resilience.Policy) Option {
	return optionFunc(func(o *options) { o.defaultPolicy = p })
}

// WithTrapThreshold rebuilds a plugin once n of its calls trapped within
// window (defaults DefaultTrapThreshold in DefaultTrapWindow). n <= 0
// turns the rule off.
func WithTrapThreshold(n int, window time.Duration) Option {
	return optionFunc(func(o *options) { o.trapThreshold, o.trapWindow = n, window })
}

// WithBackoff bounds the delay between two rebuilds of one plugin: the
// first rebuild runs at once, the next no sooner than min after it, each
// later one twice as late as the one before, up to max. A plugin quiet for
// twice max starts again from the first step. Defaults DefaultBackoffMin,
// DefaultBackoffMax.
func WithBackoff(min, max time.Duration) Option {
	return optionFunc(func(o *options) { o.backoffMin, o.backoffMax = min, max })
}

// WithDrainTimeout bounds how long the unload of a removed plugin waits for
// its calls in flight (default DefaultDrainTimeout).
func WithDrainTimeout(d time.Duration) Option { return optionFunc(func(o *options) { o.drain = d }) }

// WithChangeHook calls f, on the goroutine that handled it, after each
// change of the directory was applied: a plugin added, updated (module or
// sidecar, whether loaded, refused or quarantined) or, with removed,
// unloaded because its file is gone. A service keeps per-plugin health
// checks in step with it. f must not call the supervisor back.
func WithChangeHook(f func(name string, removed bool)) Option {
	return optionFunc(func(o *options) { o.onChange = f })
}

// WithLoadHook calls fn after each version the supervisor loads, with its
// bytes and manifest (to share it with other hosts). fn runs on the
// plugin's load path, so it must not block; it must not keep or change wasm
// beyond the call unless it copies it.
func WithLoadHook(fn func(plugin, version string, wasm []byte, m abi.Manifest)) Option {
	return optionFunc(func(o *options) { o.onLoad = fn })
}
