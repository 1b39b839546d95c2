package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

const pluginsSynopsis = "plugins ls [--plugins DIR] [--json] | reload NAME [--plugins DIR]"

// runPlugins lists the plugins of a directory with their state, or loads
// one of them to check it. Both load the modules into a host of their own:
// what they report is what a service would do with the same files.
func runPlugins(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugins", pluginsSynopsis, stderr)
	var (
		dir    = fs.String("plugins", "", "plugins `DIR` (default $BULKHEAD_PLUGINS, else ./plugins)")
		data   = fs.String("data", "", "data `DIR` holding the compilation cache (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
		asJSON = fs.Bool("json", false, "ls: print the statuses as JSON")
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
	pdir := pluginsDirOf(*dir)
	if st, err := os.Stat(pdir); err != nil || !st.IsDir() {
		fprintf(stderr, "bulkhead plugins: %s is not a directory\n", pdir)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	sv, err := supervisor.New(h, pdir, supervisor.WithLogger(logger),
		supervisor.WithRegistryOptions(plugins.WithFSNotify(false)))
	if err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	defer sv.Stop(context.Background())

	if sub == "reload" {
		return pluginsReload(ctx, sv, pos[1], stdout, stderr)
	}
	if err := sv.Start(ctx); err != nil {
		fprintf(stderr, "bulkhead plugins: %v\n", err)
		return exitUsage
	}
	sts := sv.Statuses()
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
		return exitOK
	}
	writeStatuses(stdout, sts)
	return exitOK
}

func pluginsReload(ctx context.Context, sv *supervisor.Supervisor, name string, stdout, stderr io.Writer) int {
	st, err := sv.Reload(ctx, name)
	if errors.Is(err, plugins.ErrNotFound) || errors.Is(err, plugins.ErrInvalidName) {
		fprintf(stderr, "bulkhead plugins reload: %v\n", err)
		return exitUsage
	}
	writeStatuses(stdout, []supervisor.Status{st})
	if err != nil {
		return exitFailure
	}
	return exitOK
}

// writeStatuses prints one plugin a line; the reason, which may be long,
// comes last.
func writeStatuses(w io.Writer, sts []supervisor.Status) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATUS\tBREAKER\tPOOL\tREASON")
	for _, st := range sts {
		version := st.Version
		if len(version) > 12 {
			version = version[:12]
		}
		if version == "" {
			version = "-"
		}
		pool := "-"
		if st.PoolMax > 0 {
			pool = fmt.Sprintf("%d/%d", st.PoolIdle+st.PoolInUse, st.PoolMax)
		}
		reason := strings.Join(strings.Fields(st.Reason), " ")
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, version, st.State, st.Breaker, pool, reason)
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
