package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const migrateSynopsis = "migrate [--store URL]"

// runMigrate applies the embedded schema migrations to the PostgreSQL
// database of --store (or BULKHEAD_STORE) and says which versions it
// applied. It exits 0 when the schema is current, 1 when the database
// could not be migrated and 2 for a missing or malformed URL.
func runMigrate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", migrateSynopsis, stdout, stderr)
	store := fs.String("store", "", "PostgreSQL store `URL` (default $BULKHEAD_STORE)")
	if _, code, ok := parseSubcommand(fs, args, "migrate", 0, stderr); !ok {
		return code
	}
	url := storeURL(*store)
	if url == "" {
		fprintf(stderr, "bulkhead migrate: no store URL: pass --store postgres://… or set BULKHEAD_STORE (the embedded store needs no migration)\n")
		return exitUsage
	}
	if err := server.CheckStoreURL(url); err != nil {
		fprintf(stderr, "bulkhead migrate: %s: %v\n", storeSource(*store), err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	applied, err := server.Migrate(ctx, url)
	if err != nil {
		fprintf(stderr, "bulkhead migrate: %v\n", err)
		if errors.Is(err, statestore.ErrInvalid) {
			return exitUsage
		}
		return exitFailure
	}
	if len(applied) == 0 {
		fprintf(stdout, "schema is current\n")
		return exitOK
	}
	vs := make([]string, len(applied))
	for i, v := range applied {
		vs[i] = strconv.Itoa(v)
	}
	fprintf(stdout, "applied migrations: %s\n", strings.Join(vs, ", "))
	return exitOK
}
