package server

import (
	"log/slog"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// LoaderOptions are what a command says about loading a plugins directory.
type LoaderOptions struct {
	Logger        *slog.Logger
	DefaultPolicy resilience.Policy // the policy of a plugin whose sidecar names none
	MaxModuleSize int64             // 0: the registry's default
	Watch         bool              // false: no fsnotify watch (polling only)
	Extra         []supervisor.Option
}

// NewLoader is the one way every command loads a plugins directory into
// a host: `serve`, `run` and `plugins` all read each module with its
// sidecar manifest and policy through the same supervisor, so a sidecar
// one of them refuses (an unknown key, a bad preset, a module that does not
// compile) is refused by all of them, with the same reason. `call` reads a
// single module's sidecar with ReadPlugin, through the same registry and
// policy parsing.
func NewLoader(h *host.Host, dir string, o LoaderOptions) (*supervisor.Supervisor, error) {
	regOpts := []plugins.Option{}
	if o.MaxModuleSize > 0 {
		regOpts = append(regOpts, plugins.WithMaxModuleSize(o.MaxModuleSize))
	}
	if !o.Watch {
		regOpts = append(regOpts, plugins.WithFSNotify(false))
	}
	opts := []supervisor.Option{
		supervisor.WithDefaultPolicy(o.DefaultPolicy),
		supervisor.WithRegistryOptions(regOpts...),
	}
	if o.Logger != nil {
		opts = append(opts, supervisor.WithLogger(o.Logger))
	}
	return supervisor.New(h, dir, append(opts, o.Extra...)...)
}

// ReadPlugin reads one plugin of dir the way NewLoader's supervisor does:
// the module, its sidecar manifest (decoded strictly) and the policy the
// sidecar asks for over def (nil when it names neither a preset nor a
// policy). `call` uses it for a module with a sidecar beside it.
func ReadPlugin(dir, name string, def resilience.Policy) ([]byte, plugins.Manifest, *resilience.Policy, error) {
	reg, err := plugins.New(dir, plugins.WithFSNotify(false), plugins.WithPolicyValidator(supervisor.ValidatePolicy))
	if err != nil {
		return nil, plugins.Manifest{}, nil, err
	}
	b, _, m, err := reg.Read(name)
	if err != nil {
		return nil, m, nil, err
	}
	if m.Preset == "" && m.PolicyYAML == nil {
		return b, m, nil, nil
	}
	pol, err := supervisor.PolicyOf(m, def)
	if err != nil {
		return nil, m, nil, err
	}
	return b, m, &pol, nil
}
