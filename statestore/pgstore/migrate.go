package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSchema: the database's schema is not the one this binary was built
// for: a recorded migration differs from the embedded one, the database
// has migrations this binary does not know (it is newer), or, when opened
// WithoutMigrate, migrations are missing. Nothing is changed.
var ErrSchema = errors.New("pgstore: schema mismatch")

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key held while migrating ("bulkhead"
// in ASCII, trimmed to 63 bits).
const migrationLock int64 = 0x62756c6b68656164 & (1<<63 - 1)

type migration struct {
	version  int
	name     string
	sql      string
	checksum string
}

// migrations returns the embedded migrations ordered by version. Files are
// named NNNN_what.sql.
func migrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name does not start with a version", base)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: base, sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.name, m.version, i+1)
		}
	}
	return out, nil
}

// Migrate applies the embedded migrations the database at url lacks and
// returns their versions (none when it is up to date). It runs in one
// transaction under an advisory lock, so concurrent callers apply each
// migration once. It refuses, with an error matching ErrSchema and without
// changing anything, a database whose recorded migrations differ from the
// embedded ones or go beyond them.
func Migrate(ctx context.Context, url string) ([]int, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 1
	addr := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate %s: %w", addr, translate(err))
	}
	defer pool.Close()
	applied, err := migrate(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate %s: %w", addr, err)
	}
	return applied, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	want, err := migrations()
	if err != nil {
		return nil, err
	}
	var applied []int
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    int PRIMARY KEY,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return err
		}
		have, err := recorded(ctx, tx)
		if err != nil {
			return err
		}
		if err := compare(want, have); err != nil {
			return err
		}
		for _, m := range want[len(have):] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, translate(err))
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", m.version, m.checksum); err != nil {
				return err
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	if err != nil {
		return nil, translate(err)
	}
	return applied, nil
}

// checkSchema fails unless every embedded migration is recorded.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	want, err := migrations()
	if err != nil {
		return err
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return translate(err)
	}
	if !exists {
		return fmt.Errorf("%w: no schema_migrations table: migrate the database first", ErrSchema)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	have, err := recorded(ctx, tx)
	if err != nil {
		return translate(err)
	}
	if err := compare(want, have); err != nil {
		return err
	}
	if len(have) < len(want) {
		return fmt.Errorf("%w: database at version %d, this binary needs %d: migrate the database first", ErrSchema, len(have), len(want))
	}
	return nil
}

type record struct {
	version  int
	checksum string
}

func recorded(ctx context.Context, tx pgx.Tx) ([]record, error) {
	rows, err := tx.Query(ctx, "SELECT version, checksum FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (record, error) {
		var r record
		err := row.Scan(&r.version, &r.checksum)
		return r, err
	})
}

// compare checks that have is a prefix of want.
func compare(want []migration, have []record) error {
	for i, r := range have {
		if r.version != i+1 {
			return fmt.Errorf("%w: recorded migrations skip version %d", ErrSchema, i+1)
		}
		if i >= len(want) {
			return fmt.Errorf("%w: database at version %d is newer than this binary (version %d)", ErrSchema, have[len(have)-1].version, len(want))
		}
		if r.checksum != want[i].checksum {
			return fmt.Errorf("%w: migration %d recorded with checksum %.12s, this binary has %.12s (%s)", ErrSchema, r.version, r.checksum, want[i].checksum, want[i].name)
		}
	}
	return nil
}
