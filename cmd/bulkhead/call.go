package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

const callSynopsis = "call FILE.wasm [FUNCTION] [flags]"

func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", callSynopsis, stdout, stderr)
	var (
		input     = fs.String("input", "", "input `STRING` for the call")
		inputFile = fs.String("input-file", "", "read the input from `PATH` (- for stdin)")
		timeout   = fs.Duration("timeout", 30*time.Second, "stop the call after `DURATION`")
		data      = fs.String("data", "", "data `DIR` holding the compilation cache (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
		logLevel  = fs.String("log-level", "info", "guest log `LEVEL` shown on stderr: debug, info, warn, error")
		preset    = fs.String("policy", "", "resilience policy `PRESET`: "+strings.Join(resilience.PresetNames(), ", ")+" (default: one attempt, no retry)")
		attempts  = fs.Int("max-attempts", 0, "attempts in all, retries included (`N`; default 1, or the preset's)")
		stats     = fs.Bool("stats", false, "print attempts, duration and fuel (CPU, in about one Wasm instruction per unit) on stderr")
		noFuel    = fs.Bool("no-fuel", false, "run without CPU metering, stopping the guest with close-on-context-done")
		cpuBudget = fs.Int64("cpu-budget", 0, "stop the call after `UNITS` of fuel (about one Wasm instruction each; default no budget)")
		chaosRate = fs.Float64("chaos-error-rate", 0, "inject a retryable failure into each attempt with probability `P`")
		memory    abi.Size
		configs   listFlag
		hosts     listFlag
		paths     listFlag
	)
	fs.Var(sizeFlag{&memory}, "memory", "cap the guest's memory at `SIZE`, e.g. 64MiB (default 64MiB)")
	fs.Var(&configs, "config", "config `KEY=VALUE` the guest reads (repeatable)")
	fs.Var(&hosts, "allow-host", "let the guest reach hosts matching `GLOB` over HTTP (repeatable)")
	fs.Var(&paths, "allow-path", "mount `HOST_DIR:GUEST_DIR` in the guest, ro:HOST_DIR for read-only (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) < 1 || len(pos) > 2 {
		fprintf(stderr, "bulkhead call: want a module and at most one function, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	file, fn := pos[0], abi.ExportRun
	if len(pos) == 2 {
		fn = pos[1]
	}
	if *input != "" && *inputFile != "" {
		fprintf(stderr, "bulkhead call: use --input or --input-file, not both\n")
		return exitUsage
	}
	if *timeout <= 0 {
		fprintf(stderr, "bulkhead call: --timeout must be positive\n")
		return exitUsage
	}
	m := abi.Manifest{Memory: memory, AllowedHosts: hosts, Timeout: abi.Duration(*timeout), CPUBudget: *cpuBudget}
	for _, kv := range configs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fprintf(stderr, "bulkhead call: --config wants KEY=VALUE, got %q\n", kv)
			return exitUsage
		}
		if m.Config == nil {
			m.Config = map[string]string{}
		}
		m.Config[k] = v
	}
	for _, p := range paths {
		hostDir, guestDir, err := splitAllowPath(p)
		if err != nil {
			fprintf(stderr, "bulkhead call: %v\n", err)
			return exitUsage
		}
		if m.AllowedPaths == nil {
			m.AllowedPaths = map[string]string{}
		}
		m.AllowedPaths[hostDir] = guestDir
	}
	pol, err := callPolicy(*preset, *attempts, *chaosRate)
	if err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fprintf(stderr, "bulkhead call: --log-level: %v\n", err)
		return exitUsage
	}

	in := []byte(*input)
	if *inputFile != "" {
		var err error
		if *inputFile == "-" {
			in, err = io.ReadAll(stdin)
		} else {
			in, err = os.ReadFile(*inputFile)
		}
		if err != nil {
			fprintf(stderr, "bulkhead call: read input: %v\n", err)
			return exitUsage
		}
	}
	wasm, err := os.ReadFile(file)
	if err != nil {
		fprintf(stderr, "bulkhead call: %v\n", plainPathError(err))
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	h, err := host.New(host.WithLogger(logger), host.WithCacheDir(cacheDir(dataDir(*data))),
		host.WithDefaultTimeout(*timeout), host.WithPolicy(pol), host.WithFuel(!*noFuel))
	if err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	if err := h.Start(ctx); err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	defer h.Stop(context.Background())
	name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	if _, err := h.Load(ctx, name, wasm, m); err != nil {
		fprintf(stderr, "bulkhead call: cannot load %s: %v\n", file, errors.Unwrap(err))
		return exitUsage
	}
	if info, _ := h.Plugin(name); !slices.Contains(info.Exports, fn) {
		fprintf(stderr, "bulkhead call: %s has no export %q (exports: %s)\n", file, fn, strings.Join(info.Exports, ", "))
		return exitUsage
	}
	start := time.Now()
	res, err := h.Invoke(ctx, host.InvokeRequest{Plugin: name, Function: fn, Input: in})
	if *stats {
		info, _ := h.Plugin(name)
		fuel := "unmetered"
		if info.Metered {
			fuel = fmt.Sprint(info.FuelUsed)
		}
		attempts := res.Attempts
		var ex *resilience.ExhaustedError
		if errors.As(err, &ex) {
			attempts = ex.Attempts
		}
		fprintf(stderr, "bulkhead call: %s %s: attempts=%d duration=%s fuel=%s version=%.12s\n",
			name, fn, attempts, time.Since(start).Round(time.Microsecond), fuel, info.Version)
	}
	if err != nil {
		fprintf(stderr, "bulkhead call: %v\n", callError(err))
		return exitFailure
	}
	if _, err := stdout.Write(res.Output); err != nil {
		fprintf(stderr, "bulkhead call: write output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func splitAllowPath(p string) (hostDir, guestDir string, err error) {
	ro := strings.HasPrefix(p, "ro:")
	rest := strings.TrimPrefix(p, "ro:")
	hostDir, guestDir, ok := strings.Cut(rest, ":")
	if !ok || hostDir == "" || guestDir == "" {
		return "", "", fmt.Errorf("--allow-path wants HOST_DIR:GUEST_DIR, got %q", p)
	}
	if ro {
		hostDir = "ro:" + hostDir
	}
	return hostDir, guestDir, nil
}

// plainPathError drops the "open" prefix of a *PathError for users.
func plainPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// callPolicy builds the policy of a one-shot call: a single attempt unless
// a preset or --max-attempts asks for more.
func callPolicy(preset string, attempts int, chaosRate float64) (resilience.Policy, error) {
	var p resilience.Policy
	p.Retry.MaxAttempts = 1
	if preset != "" {
		var err error
		if p, err = resilience.Preset(preset); err != nil {
			return p, err
		}
	}
	if attempts < 0 {
		return p, fmt.Errorf("--max-attempts must be at least 1, got %d", attempts)
	}
	if attempts > 0 {
		p.Retry.MaxAttempts = attempts
	}
	if chaosRate < 0 || chaosRate > 1 {
		return p, fmt.Errorf("--chaos-error-rate must be between 0 and 1, got %g", chaosRate)
	}
	p.Chaos.ErrorRate = chaosRate
	return p, p.Validate()
}

// callError says what went wrong in a sentence: the last attempt's error,
// and how many attempts ran when there were several.
func callError(err error) string {
	var ex *resilience.ExhaustedError
	if !errors.As(err, &ex) {
		return err.Error()
	}
	msg := ex.Last().Error()
	if ex.Attempts > 1 {
		msg += fmt.Sprintf(" (after %d attempts)", ex.Attempts)
	}
	if ex.Cause != nil && !errors.Is(ex.Last(), ex.Cause) {
		msg += "; retries stopped: " + ex.Cause.Error()
	}
	return msg
}
