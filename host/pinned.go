package host

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/internal/digest"
)

// MaxPinned is how many pinned versions of one plugin LoadPinned keeps;
// loading one more retires the oldest (its calls in flight finish first).
const MaxPinned = 8

// LoadPinned compiles wasm as a version of plugin name that serves only
// calls pinned to it (WithVersion, InvokeRequest.Version), beside the
// version Load made current, which it does not change. It is how a host
// runs a version of a run it was never given as a file. Loading a version
// already loaded (current or pinned) does nothing. Pinned versions are
// kept until Stop, at most MaxPinned per plugin. Errors: ErrClosed, a
// *LoadError (ErrInvalidModule).
func (h *Host) LoadPinned(ctx context.Context, name string, wasm []byte, m abi.Manifest) (string, error) {
	if h.closed.Load() {
		return "", ErrClosed
	}
	v := Version(wasm)
	if h.HasVersion(name, v) {
		return v, nil
	}
	if err := m.Validate(); err != nil {
		return "", &LoadError{Plugin: name, Err: fmt.Errorf("manifest: %w", err)}
	}
	if err := h.ensureCache(); err != nil {
		return "", err
	}
	g, err := h.compile(ctx, name, wasm, m)
	if err != nil {
		return "", &LoadError{Plugin: name, Err: err}
	}
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		_ = h.retire(ctx, g)
		return "", ErrClosed
	}
	if h.pinned == nil {
		h.pinned = map[string][]*generation{}
	}
	for _, old := range h.pinned[name] {
		if old.version == v { // loaded meanwhile
			h.mu.Unlock()
			_ = h.retire(ctx, g)
			return v, nil
		}
	}
	gens := append(h.pinned[name], g)
	var evicted *generation
	if len(gens) > MaxPinned {
		evicted, gens = gens[0], gens[1:]
		h.wg.Add(1)
	}
	h.pinned[name] = gens
	h.mu.Unlock()
	if evicted != nil {
		go func() {
			defer h.wg.Done()
			if err := h.retire(context.Background(), evicted); err != nil {
				h.log.Warn("retire pinned version", "plugin", name, "version", digest.Short(evicted.version), "err", err)
			}
		}()
	}
	h.log.Info("pinned version loaded", "plugin", name, "version", digest.Short(v))
	return v, nil
}

// HasVersion reports whether calls pinned to version (a full hash or a
// prefix) of plugin name can run here: it is the current version or a
// pinned one.
func (h *Host) HasVersion(name, version string) bool {
	if version == "" {
		return false
	}
	if g, err := h.current(name); err == nil && strings.HasPrefix(g.version, version) {
		return true
	}
	return h.pinnedGen(name, version) != nil
}

// LoadedVersion is one version a host serves.
type LoadedVersion struct {
	Plugin  string
	Version string
	// Pinned: the version serves only calls pinned to it.
	Pinned bool
}

// Versions lists every loaded version, current and pinned, by plugin then
// version.
func (h *Host) Versions() []LoadedVersion {
	var out []LoadedVersion
	for _, g := range h.generations() {
		out = append(out, LoadedVersion{Plugin: g.plugin, Version: g.version})
	}
	h.mu.RLock()
	for name, gens := range h.pinned {
		for _, g := range gens {
			out = append(out, LoadedVersion{Plugin: name, Version: g.version, Pinned: true})
		}
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// pinnedGen returns the pinned version of name whose hash starts with
// prefix, or nil.
func (h *Host) pinnedGen(name, prefix string) *generation {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, g := range h.pinned[name] {
		if strings.HasPrefix(g.version, prefix) {
			return g
		}
	}
	return nil
}

// resolve returns the generation a call to plugin pinned to version (""
// for the current one) runs on.
func (h *Host) resolve(plugin, version string) (*generation, error) {
	g, err := h.current(plugin)
	if version == "" || (err == nil && strings.HasPrefix(g.version, version)) {
		return g, err
	}
	if pg := h.pinnedGen(plugin, version); pg != nil {
		return pg, nil
	}
	if errors.Is(err, ErrClosed) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s@%s is not loaded", ErrNoPlugin, plugin, version)
	}
	return nil, fmt.Errorf("%w: %s@%s is not loaded (loaded: %s)", ErrNoPlugin, plugin, version, digest.Short(g.version))
}

// takePinned empties the pinned versions, for Stop.
func (h *Host) takePinned() []*generation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*generation
	for _, gens := range h.pinned {
		out = append(out, gens...)
	}
	h.pinned = nil
	return out
}
