package badgerstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Keys of membership and shared modules:
//
//	h<host>                     registered host (JSON)
//	w<sha256>                   module bytes
//	W<plugin>\0<sha256>         the plugin's manifest of that module
const (
	pHost     = 'h'
	pModule   = 'w'
	pManifest = 'W'
)

var (
	_ statestore.Hosts   = (*Store)(nil)
	_ statestore.Modules = (*Store)(nil)
)

// RegisterHost implements statestore.Hosts. The store is opened by one
// process at a time, so registering forgets every other host.
func (s *Store) RegisterHost(ctx context.Context, h statestore.HostInfo) (statestore.HostInfo, error) {
	if err := statestore.CheckHost(h); err != nil {
		return statestore.HostInfo{}, err
	}
	now := s.opts.now()
	h.StartedAt, h.LastSeen, h.Age, h.Plugins = now, now, 0, nil
	b, err := json.Marshal(h)
	if err != nil {
		return statestore.HostInfo{}, err
	}
	err = s.write(ctx, func(w *writer) error {
		var old [][]byte
		it := w.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pHost}})
		for it.Rewind(); it.Valid(); it.Next() {
			old = append(old, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range old {
			if err := w.del(k); err != nil {
				return err
			}
		}
		return w.set(key(pHost, h.ID), b)
	})
	if err != nil {
		return statestore.HostInfo{}, err
	}
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
	plugins = statestore.SortHostPlugins(plugins)
	return s.write(ctx, func(w *writer) error {
		k := key(pHost, id)
		b, err := w.get(k)
		if errors.Is(err, statestore.ErrNotFound) {
			return fmt.Errorf("%w: host %s is not registered", statestore.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		var h statestore.HostInfo
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("host %s: %w", id, err)
		}
		h.LastSeen, h.Plugins = s.opts.now(), plugins
		if b, err = json.Marshal(h); err != nil {
			return err
		}
		return w.set(k, b)
	})
}

// ListHosts implements statestore.Hosts.
func (s *Store) ListHosts(ctx context.Context) ([]statestore.HostInfo, error) {
	var out []statestore.HostInfo
	err := s.view(ctx, func(txn *badger.Txn) error {
		now := s.opts.now()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pHost}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var h statestore.HostInfo
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &h) }); err != nil {
				return fmt.Errorf("host %q: %w", it.Item().Key()[1:], err)
			}
			h.Age = max(0, now.Sub(h.LastSeen))
			if len(h.Plugins) == 0 {
				h.Plugins = nil
			}
			out = append(out, h)
		}
		return nil
	})
	return out, err
}

// RemoveHost implements statestore.Hosts.
func (s *Store) RemoveHost(ctx context.Context, id string) error {
	if err := statestore.CheckID("host ID", id); err != nil {
		return err
	}
	k := key(pHost, id)
	return s.write(ctx, func(w *writer) error { return w.del(k) })
}

// PutModule implements statestore.Modules.
func (s *Store) PutModule(ctx context.Context, m statestore.Module) (string, error) {
	v, err := statestore.PrepareModule(m)
	if err != nil {
		return "", err
	}
	wasm, man := append([]byte{}, m.Wasm...), append([]byte{}, m.Manifest...)
	return v, s.write(ctx, func(w *writer) error {
		ok, err := exists(w.txn, key(pModule, v))
		if err != nil {
			return err
		}
		if !ok {
			if err := w.set(key(pModule, v), wasm); err != nil {
				return err
			}
		}
		return w.set(key(pManifest, m.Plugin, v), man)
	})
}

// GetModule implements statestore.Modules.
func (s *Store) GetModule(ctx context.Context, plugin, version string) (statestore.Module, error) {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return statestore.Module{}, err
	}
	if err := statestore.CheckVersion(version); err != nil {
		return statestore.Module{}, err
	}
	m := statestore.Module{Plugin: plugin, Version: version}
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		if m.Manifest, err = getValue(txn, key(pManifest, plugin, version)); err != nil {
			return err
		}
		m.Wasm, err = getValue(txn, key(pModule, version))
		return err
	})
	if errors.Is(err, statestore.ErrNotFound) {
		return statestore.Module{}, fmt.Errorf("%w: module of plugin %s version %s", statestore.ErrNotFound, plugin, version)
	}
	if err != nil {
		return statestore.Module{}, err
	}
	if err := statestore.CheckModule(m); err != nil {
		return statestore.Module{}, err
	}
	return m, nil
}
