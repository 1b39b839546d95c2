package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
)

// StoreDir is where the embedded store lives in a data directory.
func StoreDir(data string) string { return filepath.Join(data, "store") }

// StoreOptions say which store OpenStore opens. Zero values keep each
// store's defaults.
type StoreOptions struct {
	// URL is "" for the embedded store in DataDir, else a postgres:// URL.
	URL            string
	DataDir        string
	Logger         *slog.Logger
	Retention      time.Duration
	MaxCheckpoints int
	// Reserve is the embedded store's free-space reserve.
	Reserve int64
}

// OpenStore opens the configured store: the embedded one in the data
// directory, or PostgreSQL (with the embedded migrations applied). It is
// how every command and the service open their store. ctx bounds the
// connection to PostgreSQL. Its errors never hold the URL's password.
func OpenStore(ctx context.Context, o StoreOptions) (statestore.Store, error) {
	if err := CheckStoreURL(o.URL); err != nil {
		return nil, err
	}
	if o.URL == "" {
		var opts []badgerstore.Option
		if o.Logger != nil {
			opts = append(opts, badgerstore.WithLogger(o.Logger))
		}
		if o.Retention > 0 {
			opts = append(opts, badgerstore.WithRetention(o.Retention))
		}
		if o.MaxCheckpoints > 0 {
			opts = append(opts, badgerstore.WithMaxCheckpoints(o.MaxCheckpoints))
		}
		if o.Reserve > 0 {
			opts = append(opts, badgerstore.WithReserve(o.Reserve))
		}
		s, err := badgerstore.Open(StoreDir(o.DataDir), opts...)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	var opts []pgstore.Option
	if o.MaxCheckpoints > 0 {
		opts = append(opts, pgstore.WithMaxCheckpoints(o.MaxCheckpoints))
	}
	if o.Retention > 0 {
		opts = append(opts, pgstore.WithRetention(o.Retention))
	}
	s, err := pgstore.Open(ctx, o.URL, opts...)
	if err != nil {
		return nil, ScrubError(err, o.URL)
	}
	return s, nil
}

// Migrate applies the embedded PostgreSQL migrations the database at url
// lacks and returns their versions. Its errors never hold the password.
func Migrate(ctx context.Context, url string) ([]int, error) {
	if err := CheckStoreURL(url); err != nil {
		return nil, err
	}
	if url == "" {
		return nil, fmt.Errorf("no store URL: the embedded store needs no migration")
	}
	v, err := pgstore.Migrate(ctx, url)
	if err != nil {
		return nil, ScrubError(err, url)
	}
	return v, nil
}

// storeName names a store for the log: the embedded store's directory,
// or the URL with its password replaced.
func storeName(o StoreOptions) string {
	if o.URL == "" {
		return StoreDir(o.DataDir)
	}
	return RedactURL(o.URL)
}

// ScrubError returns err with the password of url, should its text hold
// it, replaced; errors.Is and errors.As still see err.
func ScrubError(err error, url string) error {
	pw := StorePassword(url)
	if err == nil || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), pw, Redacted), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
