package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
)

var _ statestore.Hosts = (*Store)(nil)

// RegisterHost implements statestore.Hosts on the database's clock.
func (s *Store) RegisterHost(ctx context.Context, h statestore.HostInfo) (statestore.HostInfo, error) {
	if err := statestore.CheckHost(h); err != nil {
		return statestore.HostInfo{}, err
	}
	var started, seen int64
	err := s.do(ctx, func(ctx context.Context) error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "DELETE FROM hosts WHERE last_seen_ns < bulkhead_now_ns() - $1",
			statestore.ForgetHosts.Nanoseconds()); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO hosts (id, address, version, heartbeat_ns, started_ns, last_seen_ns, plugins)
SELECT $1, $2, $3, $4, n.ns, n.ns, '[]' FROM (SELECT bulkhead_now_ns() AS ns) n
ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, version = EXCLUDED.version,
	heartbeat_ns = EXCLUDED.heartbeat_ns, started_ns = EXCLUDED.started_ns,
	last_seen_ns = EXCLUDED.last_seen_ns, plugins = EXCLUDED.plugins
RETURNING started_ns, last_seen_ns`,
			[]byte(h.ID), h.Address, h.Version, h.Heartbeat.Nanoseconds()).Scan(&started, &seen); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return statestore.HostInfo{}, err
	}
	h.StartedAt, h.LastSeen, h.Age, h.Plugins = time.Unix(0, started), time.Unix(0, seen), 0, nil
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
	b, err := json.Marshal(plugins)
	if err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, "UPDATE hosts SET last_seen_ns = bulkhead_now_ns(), plugins = $2 WHERE id = $1", []byte(id), string(b))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: host %s is not registered", statestore.ErrNotFound, id)
		}
		return nil
	})
}

// ListHosts implements statestore.Hosts.
func (s *Store) ListHosts(ctx context.Context) ([]statestore.HostInfo, error) {
	var out []statestore.HostInfo
	err := s.do(ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT id, address, version, heartbeat_ns, started_ns, last_seen_ns,
	bulkhead_now_ns() - last_seen_ns, plugins::text FROM hosts ORDER BY id`)
		if err != nil {
			return err
		}
		var (
			id                          []byte
			hb, started, seen, age      int64
			address, version, pluginsJS string
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &address, &version, &hb, &started, &seen, &age, &pluginsJS}, func() error {
			h := statestore.HostInfo{ID: string(id), Address: address, Version: version, Heartbeat: time.Duration(hb),
				StartedAt: time.Unix(0, started), LastSeen: time.Unix(0, seen), Age: max(0, time.Duration(age))}
			if err := json.Unmarshal([]byte(pluginsJS), &h.Plugins); err != nil {
				return fmt.Errorf("%w: host %s plugins: %v", errDecode, h.ID, err)
			}
			if len(h.Plugins) == 0 {
				h.Plugins = nil
			}
			out = append(out, h)
			return nil
		})
		return err
	})
	return out, err
}

// RemoveHost implements statestore.Hosts.
func (s *Store) RemoveHost(ctx context.Context, id string) error {
	if err := statestore.CheckID("host ID", id); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "DELETE FROM hosts WHERE id = $1", []byte(id))
		return err
	})
}

// PutModule implements statestore.Modules.
func (s *Store) PutModule(ctx context.Context, m statestore.Module) (string, error) {
	v, err := statestore.PrepareModule(m)
	if err != nil {
		return "", err
	}
	manifest := m.Manifest
	if manifest == nil {
		manifest = []byte{}
	}
	return v, s.do(ctx, func(ctx context.Context) error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO modules (sha256, wasm, created_ns) VALUES ($1, $2, bulkhead_now_ns())
ON CONFLICT (sha256) DO NOTHING`, v, m.Wasm); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO plugin_modules (plugin, sha256, manifest, updated_ns) VALUES ($1, $2, $3, bulkhead_now_ns())
ON CONFLICT (plugin, sha256) DO UPDATE SET manifest = EXCLUDED.manifest, updated_ns = EXCLUDED.updated_ns
	WHERE plugin_modules.manifest <> EXCLUDED.manifest`, []byte(m.Plugin), v, manifest); err != nil {
			return err
		}
		return tx.Commit(ctx)
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
	err := s.do(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `SELECT m.wasm, p.manifest FROM plugin_modules p JOIN modules m ON m.sha256 = p.sha256
WHERE p.plugin = $1 AND p.sha256 = $2`, []byte(plugin), version).Scan(&m.Wasm, &m.Manifest)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: module of plugin %s version %s", statestore.ErrNotFound, plugin, version)
		}
		return err
	})
	if err != nil {
		return statestore.Module{}, err
	}
	if err := statestore.CheckModule(m); err != nil {
		return statestore.Module{}, err
	}
	return m, nil
}
