package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Hosts and modules live in state namespaces that no plugin can name (a
// plugin name holds no NUL byte), so they share the store's lock and
// maps.
const (
	nsHosts    = "\x00hosts"
	nsModules  = "\x00modules"
	nsManifest = "\x00manifests"
)

var (
	_ statestore.Hosts   = (*Store)(nil)
	_ statestore.Modules = (*Store)(nil)
)

// RegisterHost implements statestore.Hosts. The store belongs to one
// process, so registering forgets every other host.
func (s *Store) RegisterHost(ctx context.Context, h statestore.HostInfo) (statestore.HostInfo, error) {
	if err := statestore.CheckHost(h); err != nil {
		return statestore.HostInfo{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.HostInfo{}, err
	}
	defer s.mu.Unlock()
	for k := range s.state {
		if k[0] == nsHosts {
			delete(s.state, k)
		}
	}
	now := s.opts.now()
	h.StartedAt, h.LastSeen, h.Age, h.Plugins = now, now, 0, nil
	b, err := json.Marshal(h)
	if err != nil {
		return statestore.HostInfo{}, err
	}
	s.state[[2]string{nsHosts, h.ID}] = b
	return h, nil
}

// HostHeartbeat implements statestore.Hosts.
func (s *Store) HostHeartbeat(ctx context.Context, id string, plugins []statestore.HostPlugin) error {
	if err := statestore.CheckID("host ID", id); err != nil {
		return err
	}
	if err := statestore.CheckHostPlugins(plugins); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	k := [2]string{nsHosts, id}
	b, ok := s.state[k]
	if !ok {
		return fmt.Errorf("%w: host %s is not registered", statestore.ErrNotFound, id)
	}
	var h statestore.HostInfo
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	h.LastSeen, h.Plugins = s.opts.now(), statestore.SortHostPlugins(plugins)
	nb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	s.state[k] = nb
	return nil
}

// ListHosts implements statestore.Hosts.
func (s *Store) ListHosts(ctx context.Context) ([]statestore.HostInfo, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.opts.now()
	var out []statestore.HostInfo
	for k, b := range s.state {
		if k[0] != nsHosts {
			continue
		}
		var h statestore.HostInfo
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, err
		}
		h.Age = max(0, now.Sub(h.LastSeen))
		if len(h.Plugins) == 0 {
			h.Plugins = nil
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RemoveHost implements statestore.Hosts.
func (s *Store) RemoveHost(ctx context.Context, id string) error {
	if err := statestore.CheckID("host ID", id); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.state, [2]string{nsHosts, id})
	return nil
}

// PutModule implements statestore.Modules.
func (s *Store) PutModule(ctx context.Context, m statestore.Module) (string, error) {
	v, err := statestore.PrepareModule(m)
	if err != nil {
		return "", err
	}
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.mu.Unlock()
	if _, ok := s.state[[2]string{nsModules, v}]; !ok {
		s.state[[2]string{nsModules, v}] = append([]byte{}, m.Wasm...)
	}
	s.state[[2]string{nsManifest, m.Plugin + "\x00" + v}] = append([]byte{}, m.Manifest...)
	return v, nil
}

// GetModule implements statestore.Modules.
func (s *Store) GetModule(ctx context.Context, plugin, version string) (statestore.Module, error) {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return statestore.Module{}, err
	}
	if err := statestore.CheckVersion(version); err != nil {
		return statestore.Module{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.Module{}, err
	}
	man, ok := s.state[[2]string{nsManifest, plugin + "\x00" + version}]
	wasm := s.state[[2]string{nsModules, version}]
	s.mu.Unlock()
	if !ok {
		return statestore.Module{}, fmt.Errorf("%w: module of plugin %s version %s", statestore.ErrNotFound, plugin, version)
	}
	m := statestore.Module{Plugin: plugin, Version: version, Wasm: append([]byte{}, wasm...), Manifest: append([]byte{}, man...)}
	if err := statestore.CheckModule(m); err != nil {
		return statestore.Module{}, err
	}
	return m, nil
}
