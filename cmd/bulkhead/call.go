package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

const callSynopsis = "call FILE.wasm|URL [FUNCTION] [flags] | call --manifest FILE.json [FUNCTION] [flags]"

func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", callSynopsis, stdout, stderr)
	var (
		input     = fs.StringP("input", "i", "", "input `STRING` for the call")
		inputFile = fs.String("input-file", "", "read the input from `PATH` (- for stdin)")
		fromStdin = fs.Bool("stdin", false, "read the input from stdin")
		timeout   = 30 * time.Second
		data      = fs.String("data", "", "data `DIR` whose cache folder holds the compiled code (default: the user cache directory, bulkhead/ in it)")
		logLevel  = fs.String("log-level", "info", "guest log `LEVEL` shown on stderr: trace, debug, info, warn, error, off")
		preset    = fs.String("policy", "", "resilience policy `PRESET`: "+strings.Join(resilience.PresetNames(), ", ")+" (default: one attempt, no retry)")
		attempts  = fs.Int("max-attempts", 0, "attempts in all, retries included (`N`; default 1, or the preset's)")
		loop      = fs.Int("loop", 1, "call the function `N` times on one loaded module, printing each output on its own line")
		stats     = fs.Bool("stats", false, "print attempts, duration and fuel (CPU, in about one Wasm instruction per unit) on stderr")
		noFuel    = fs.Bool("no-fuel", false, "run without CPU metering, stopping the guest with close-on-context-done")
		cpuBudget = fs.Int64("cpu-budget", 0, "stop the call after `UNITS` of fuel (about one Wasm instruction each; default no budget)")
		chaosRate = fs.Float64("chaos-error-rate", 0, "inject a retryable failure into each attempt with probability `P`")
		manifest  = fs.Bool("manifest", false, "the file is an Extism manifest (JSON: wasm, memory.max_pages, config, allowed_hosts, allowed_paths, timeout_ms)")
		download  = fs.Bool("allow-download", false, "let a module be fetched from an http(s) URL (the argument, or the manifest's wasm url)")
		setConfig = fs.String("set-config", "", "config as a JSON object of strings, e.g. '{\"k\":\"v\"}' (--config KEY=VALUE wins)")
		memory    abi.Size
		configs   listFlag
		hosts     listFlag
		paths     listFlag
	)
	fs.Bool("wasi", false, "accepted for extism compatibility: WASI is always on in the sandbox")
	fs.Var(durationMS{&timeout}, "timeout", "stop the call after `DURATION` (30s, 500ms; a bare number is milliseconds, as in extism)")
	fs.Var(sizeFlag{&memory}, "memory", "cap the guest's memory at `SIZE`, e.g. 64MiB (default 64MiB)")
	fs.Var(&configs, "config", "config `KEY=VALUE` the guest reads (repeatable)")
	fs.Var(&hosts, "allow-host", "let the guest reach hosts matching `GLOB` over HTTP (repeatable)")
	fs.Var(&paths, "allow-path", "mount `DIR` in the guest at the same path, or HOST_DIR:GUEST_DIR; ro: before it for read-only (repeatable)")
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
	inputs := 0
	for _, set := range []bool{*input != "", *inputFile != "", *fromStdin} {
		if set {
			inputs++
		}
	}
	if inputs > 1 {
		fprintf(stderr, "bulkhead call: use one of --input, --input-file and --stdin\n")
		return exitUsage
	}
	if *fromStdin {
		*inputFile = "-"
	}
	if timeout <= 0 {
		fprintf(stderr, "bulkhead call: --timeout must be positive\n")
		return exitUsage
	}
	if *loop < 1 {
		fprintf(stderr, "bulkhead call: --loop must be at least 1, got %d\n", *loop)
		return exitUsage
	}

	// The module and the manifest: an Extism manifest's, then the flags
	// over it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var m abi.Manifest
	var wasm []byte
	var sidecarPol *resilience.Policy
	name := moduleName(file)
	if *manifest {
		em, err := readExtismManifest(file)
		if err != nil {
			fprintf(stderr, "bulkhead call: %v\n", err)
			return exitUsage
		}
		if m, err = em.toManifest(); err != nil {
			fprintf(stderr, "bulkhead call: %s: %v\n", file, err)
			return exitUsage
		}
		if em.TimeoutMS > 0 && !fs.Changed("timeout") {
			timeout = time.Duration(em.TimeoutMS) * time.Millisecond
		}
		w := em.Wasm[0]
		if wasm, err = fetchModule(ctx, w.Path, w.URL, w.Hash, *download); err != nil {
			fprintf(stderr, "bulkhead call: %s: %v\n", file, err)
			return exitUsage
		}
		if w.Name != "" {
			name = w.Name
		} else {
			name = moduleName(w.Path + w.URL)
		}
	} else if side := strings.TrimSuffix(file, ".wasm") + plugins.ManifestExt; strings.HasSuffix(file, ".wasm") && plugins.ValidName(name) && fileExists(side) {
		// A module with a sidecar beside it is read as serve, run and
		// plugins read it: the same strict sidecar, the same policy.
		var pm plugins.Manifest
		if wasm, pm, sidecarPol, err = server.ReadPlugin(filepath.Dir(file), name, resilience.Policy{}); err != nil {
			fprintf(stderr, "bulkhead call: %s\n", userMessage(err.Error()))
			return exitUsage
		}
		m = pm.Manifest
		if m.Timeout > 0 && !fs.Changed("timeout") {
			timeout = time.Duration(m.Timeout)
		}
	} else if wasm, err = fetchModule(ctx, file, "", "", *download); err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	if memory != 0 {
		m.Memory = memory
	}
	if *cpuBudget != 0 {
		m.CPUBudget = *cpuBudget
	}
	m.AllowedHosts = append(m.AllowedHosts, hosts...)
	m.Timeout = abi.Duration(timeout)
	if *setConfig != "" {
		var kv map[string]string
		if err := json.Unmarshal([]byte(*setConfig), &kv); err != nil {
			fprintf(stderr, "bulkhead call: --set-config wants a JSON object of strings such as '{\"key\":\"value\"}': %v\n", err)
			return exitUsage
		}
		for k, v := range kv {
			if m.Config == nil {
				m.Config = map[string]string{}
			}
			m.Config[k] = v
		}
	}
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
	if sidecarPol != nil && !fs.Changed("policy") && !fs.Changed("max-attempts") {
		pol = *sidecarPol
		pol.Chaos.ErrorRate = max(pol.Chaos.ErrorRate, *chaosRate)
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
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
			fprintf(stderr, "bulkhead call: read input: %v\n", plainPathError(err))
			return exitUsage
		}
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	h, err := host.New(host.WithLogger(logger), host.WithCacheDir(callCacheDir(*data)),
		host.WithDefaultTimeout(timeout), host.WithPolicy(pol), host.WithFuel(!*noFuel))
	if err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	if err := h.Start(ctx); err != nil {
		fprintf(stderr, "bulkhead call: %v\n", err)
		return exitUsage
	}
	defer h.Stop(context.Background())
	if _, err := h.Load(ctx, name, wasm, m); err != nil {
		fprintf(stderr, "bulkhead call: cannot load %s: %v\n", file, errors.Unwrap(err))
		return exitUsage
	}
	if info, _ := h.Plugin(name); !slices.Contains(info.Exports, fn) {
		fprintf(stderr, "bulkhead call: %s has no export %q (exports: %s)\n", file, fn, strings.Join(info.Exports, ", "))
		return exitUsage
	}
	for i := 0; i < *loop; i++ {
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
		out := res.Output
		if *loop > 1 {
			out = append(out, '\n')
		}
		if _, err := stdout.Write(out); err != nil {
			fprintf(stderr, "bulkhead call: write output: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// moduleName names the plugin after its file or URL: node.wasm is "node".
func moduleName(file string) string {
	if u, err := url.Parse(file); err == nil && u.Scheme != "" && u.Path != "" {
		file = u.Path
	}
	n := strings.TrimSuffix(path.Base(filepath.ToSlash(file)), ".wasm")
	if !plugins.ValidName(n) {
		return "module"
	}
	return n
}

// parseLogLevel reads extism's log levels: trace, debug, info, warn, error
// and off.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4, nil
	case "off", "none":
		return slog.LevelError + 100, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want trace, debug, info, warn, error or off, got %q", s)
	}
	return l, nil
}

// callCacheDir is where `call` keeps compiled code: $BULKHEAD_CACHE, else
// the cache folder of --data, else bulkhead/ in the user cache directory
// (~/.cache/bulkhead on Linux), never the working directory.
func callCacheDir(data string) string {
	if v := os.Getenv("BULKHEAD_CACHE"); v != "" {
		return v
	}
	if data != "" {
		return filepath.Join(data, "cache")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "bulkhead")
	}
	return cacheDir(dataDir(""))
}

// durationMS is a --timeout: a duration such as 30s, or milliseconds.
type durationMS struct{ d *time.Duration }

func (v durationMS) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}
func (v durationMS) Type() string { return "duration" }
func (v durationMS) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v.d = time.Duration(n) * time.Millisecond
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 500ms, or milliseconds such as 30000")
	}
	*v.d = d
	return nil
}

// splitAllowPath reads --allow-path: DIR (the same path in the guest) or
// HOST_DIR:GUEST_DIR, with ro: before it for read-only.
func splitAllowPath(p string) (hostDir, guestDir string, err error) {
	ro := strings.HasPrefix(p, "ro:")
	rest := strings.TrimPrefix(p, "ro:")
	hostDir, guestDir, ok := strings.Cut(rest, ":")
	if !ok {
		guestDir = hostDir
	}
	if hostDir == "" || guestDir == "" {
		return "", "", fmt.Errorf("--allow-path wants DIR or HOST_DIR:GUEST_DIR, got %q", p)
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
