package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/plugins"
)

const pluginsSynopsis = "plugins ls [--plugins DIR] [--json] | reload NAME [--plugins DIR] | ls|reload NAME --server URL"

// runPlugins lists the plugins of a directory with their state, or loads
// one of them to check it. Both load the modules into a host of their own:
// what they report is what a service would do with the same files. With
// --server they list or reload the plugins of that running service
// instead.
func runPlugins(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugins", pluginsSynopsis, stdout, stderr)
	var (
		dir       = fs.String("plugins", "", "plugins `DIR` (default $BULKHEAD_PLUGINS, else ./plugins)")
		data      = fs.String("data", "", "data `DIR` holding the compilation cache (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
		asJSON    = jsonFlag(fs, "print the statuses as JSON")
		remoteURL = serverFlag(fs)
	)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) == 0 {
		fprintf(stderr, "bulkhead plugins: want ls or reload NAME\n")
		fs.Usage()
		return exitUsage
	}
	sub := pos[0]
	switch {
	case sub == "ls" && len(pos) == 1:
	case sub == "reload" && len(pos) == 2:
	default:
		fprintf(stderr, "bulkhead plugins: want ls or reload NAME, got %q\n", pos)
		fs.Usage()
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rm, code := dialRemote("plugins "+sub, *remoteURL, stderr)
	if code != exitOK {
		return code
	}
	if rm != nil {
		return pluginsRemote(ctx, rm, pos, *asJSON, stdout, stderr)
	}
	pdir := pluginsDirOf(*dir)
	if st, err := os.Stat(pdir); err != nil || !st.IsDir() {
		fprintf(stderr, "bulkhead plugins: %s is not a directory\n", pdir)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	h, err := host.New(host.WithLogger(logger), host.WithCacheDir(cacheDir(dataDir(*data))))
	if err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	if err := h.Start(ctx); err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	defer h.Stop(context.Background())
	sv, err := server.NewLoader(h, pdir, server.LoaderOptions{Logger: logger})
	if err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	defer sv.Stop(context.Background())

	if sub == "reload" {
		return pluginsReload(ctx, sv, pos[1], *asJSON, stdout, stderr)
	}
	if err := sv.Start(ctx); err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	if err := sv.WaitReady(ctx); err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitFailure
	}
	sts := sv.Statuses()
	for i := range sts {
		sts[i].Reason = userMessage(sts[i].Reason)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if sts == nil {
			sts = []supervisor.Status{}
		}
		if err := enc.Encode(sts); err != nil {
			fprintf(stderr, "bulkhead plugins: %v\n", err)
			return exitFailure
		}
	} else {
		writeStatuses(stdout, sts)
	}
	var bad []string
	for _, st := range sts {
		if st.State != supervisor.StateOK {
			bad = append(bad, st.Name)
		}
	}
	return lsStatus(bad, stderr)
}

// lsStatus is the exit status of `plugins ls`, which gates CI: 1 when a
// plugin is refused, quarantined or failed, with their names on stderr.
func lsStatus(bad []string, stderr io.Writer) int {
	if len(bad) == 0 {
		return exitOK
	}
	fprintf(stderr, "bulkhead plugins ls: %d plugin(s) not ok: %s\n", len(bad), strings.Join(bad, ", "))
	return exitFailure
}

func pluginsReload(ctx context.Context, sv *supervisor.Supervisor, name string, asJSON bool, stdout, stderr io.Writer) int {
	st, err := sv.Reload(ctx, name)
	if errors.Is(err, plugins.ErrNotFound) || errors.Is(err, plugins.ErrInvalidName) {
		fprintf(stderr, "bulkhead plugins reload: %v\n", err)
		return exitUsage
	}
	st.Reason = userMessage(st.Reason)
	if asJSON {
		if code := printJSON(stdout, st); code != exitOK {
			return code
		}
	} else {
		writeStatuses(stdout, []supervisor.Status{st})
	}
	if err != nil {
		return exitFailure
	}
	return exitOK
}

// pluginsRemote lists or reloads the plugins of a running service. The
// JSON of ls is the service's view of each plugin (GET /v1/plugins): the
// fields of the local listing, with call counts, exports and manifest.
func pluginsRemote(ctx context.Context, rm *remote, pos []string, asJSON bool, stdout, stderr io.Writer) int {
	if pos[0] == "reload" {
		st, err := rm.c.Reload(ctx, pos[1])
		if err != nil {
			code := exitFailure
			if s := httpStatus(err); s == http.StatusNotFound || s == http.StatusBadRequest {
				code = exitUsage
			} else if s != 0 {
				// A name the service does not list is a usage error
				// whatever status the service chose for it.
				if sts, lerr := rm.c.Plugins(ctx); lerr == nil && !slices.ContainsFunc(sts, func(st api.PluginStatus) bool { return st.Name == pos[1] }) {
					code = exitUsage
				}
			}
			return rm.fail(err, code, stderr)
		}
		if asJSON {
			return printJSON(stdout, st)
		}
		writeRows(stdout, []pluginRow{rowOfAPI(st)})
		return exitOK
	}
	sts, err := rm.c.Plugins(ctx)
	if err != nil {
		return rm.fail(err, exitUsage, stderr)
	}
	if sts == nil {
		sts = []api.PluginStatus{}
	}
	var bad []string
	for _, st := range sts {
		if st.State != string(supervisor.StateOK) {
			bad = append(bad, st.Name)
		}
	}
	if asJSON {
		if code := printJSON(stdout, sts); code != exitOK {
			return code
		}
		return lsStatus(bad, stderr)
	}
	rows := make([]pluginRow, 0, len(sts))
	for _, st := range sts {
		rows = append(rows, rowOfAPI(st))
	}
	writeRows(stdout, rows)
	return lsStatus(bad, stderr)
}

// pluginRow is one line of the plugins table.
type pluginRow struct {
	name, version, state, breaker, reason string
	idle, inUse, max                      int
}

func rowOfAPI(st api.PluginStatus) pluginRow {
	return pluginRow{st.Name, st.Version, st.State, st.Breaker, st.Reason, st.PoolIdle, st.PoolInUse, st.PoolMax}
}

// writeStatuses prints one plugin a line; the reason, which may be long,
// comes last.
func writeStatuses(w io.Writer, sts []supervisor.Status) {
	rows := make([]pluginRow, 0, len(sts))
	for _, st := range sts {
		rows = append(rows, pluginRow{st.Name, st.Version, string(st.State), st.Breaker.String(), st.Reason, st.PoolIdle, st.PoolInUse, st.PoolMax})
	}
	writeRows(w, rows)
}

func writeRows(w io.Writer, rows []pluginRow) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATUS\tBREAKER\tPOOL\tREASON")
	for _, st := range rows {
		version := digest.Short(st.version)
		if version == "" {
			version = "-"
		}
		pool := "-"
		if st.max > 0 {
			pool = fmt.Sprintf("%d/%d", st.idle+st.inUse, st.max)
		}
		reason := strings.Join(strings.Fields(userMessage(st.reason)), " ")
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.name, version, st.state, st.breaker, pool, reason)
	}
	tw.Flush()
}

// pluginsDirOf resolves the plugins directory: the flag, else
// $BULKHEAD_PLUGINS, else ./plugins.
func pluginsDirOf(flagValue string) string {
	for _, v := range []string{flagValue, os.Getenv("BULKHEAD_PLUGINS")} {
		if v != "" {
			return v
		}
	}
	return "plugins"
}
