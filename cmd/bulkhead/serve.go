package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/app"
	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
)

const serveSynopsis = "serve [--config FILE] [--listen ADDR] [--plugins DIR] [--workflows DIR] [--data DIR] [flags]"

// serveSignals are the signals that drain the service; a second one cuts
// the grace period short.
var serveSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}

func runServe(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveSynopsis, stdout, stderr)
	flags := config.AddFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 0 {
		fprintf(stderr, "bulkhead serve: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, err := config.Load(config.Options{File: config.FileFromFlags(flags, nil), Flags: flags})
	if err != nil {
		fprintf(stderr, "bulkhead serve: invalid configuration:\n  %s\n", strings.ReplaceAll(userMessage(err.Error()), "\n", "\n  "))
		return exitUsage
	}
	if err := checkPluginsDir(cfg); err != nil {
		fprintf(stderr, "bulkhead serve: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, serveSignals...)
	defer signal.Stop(sigs)

	bi, _ := debug.ReadBuildInfo()
	app.Version = versionOf(bi).Version
	a := fx.New(app.Options(cfg, log))
	if err := a.Err(); err != nil {
		log.Error("cannot start", "err", err)
		if storeUnusable(err) {
			what, hint := "the data directory", storeHint(err, cfg.DataDir)
			if cfg.Store.URL != "" {
				what, hint = "the store", ""
			}
			fprintf(stderr, "bulkhead serve: %s cannot be used: %v\n%s", what, err, hint)
			return exitUsage
		}
		return exitFailure
	}
	startCtx, cancel := context.WithTimeout(context.Background(), a.StartTimeout())
	defer cancel()
	if err := a.Start(startCtx); err != nil {
		log.Error("cannot start", "err", err)
		stopCtx, cancel := context.WithTimeout(context.Background(), a.StopTimeout())
		defer cancel()
		_ = a.Stop(stopCtx)
		return exitFailure
	}
	sig := <-sigs
	log.Info("stopping", "signal", sig.String(), "grace", cfg.Drain.GracePeriod.D())
	stopCtx, cancelStop := context.WithTimeout(context.Background(), a.StopTimeout())
	defer cancelStop()
	go func() {
		select {
		case s := <-sigs:
			log.Warn("second signal: cutting the drain short", "signal", s.String())
			cancelStop()
		case <-stopCtx.Done():
		}
	}()
	start := time.Now()
	if err := a.Stop(stopCtx); err != nil {
		log.Error("stopped with errors", "err", err)
		return exitFailure
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return exitOK
}

// newLogger returns the service's logger: text or JSON on stderr at the
// configured level.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}

// storeUnusable reports whether err says the store cannot be opened:
// damaged, in use, not writable, out of space, or a database that is
// unreachable, refuses the URL or has a schema this binary cannot use.
func storeUnusable(err error) bool {
	return errors.Is(err, badgerstore.ErrCorrupt) || errors.Is(err, badgerstore.ErrInUse) ||
		errors.Is(err, badgerstore.ErrNotWritable) || errors.Is(err, statestore.ErrNoSpace) ||
		errors.Is(err, statestore.ErrUnavailable) || errors.Is(err, statestore.ErrInvalid) ||
		errors.Is(err, pgstore.ErrSchema)
}

// checkPluginsDir refuses a plugins directory that cannot be read, in one
// sentence naming the flag, variable or file line that set it: a
// configuration error (exit 2), which a service manager must not retry.
func checkPluginsDir(cfg *config.Config) error {
	_, err := os.ReadDir(cfg.PluginsDir)
	if err == nil {
		return nil
	}
	src := "the default (set --plugins, BULKHEAD_PLUGINS or plugins_dir)"
	for _, s := range cfg.Settings() {
		if s.Key == "plugins_dir" && s.Source.Kind != config.FromDefault {
			src = s.Source.String()
			if s.Source.Kind == config.FromFile {
				src += " (plugins_dir)"
			}
		}
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("the plugins directory %s cannot be read: %v; it was set by %s", cfg.PluginsDir, err, src)
}
