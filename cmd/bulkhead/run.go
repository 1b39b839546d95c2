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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const runSynopsis = "run FLOW.yaml [--input S | --input-file F] [--run-id ID] [--plugins DIR] [--data DIR | --store URL | --server URL]"

// drainGrace is how long an interrupted command lets running nodes finish.
const drainGrace = 5 * time.Second

func runRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runSynopsis, stdout, stderr)
	var (
		input     = fs.String("input", "", "the run's input `STRING`")
		inputFile = fs.String("input-file", "", "read the run's input from `PATH` (- for stdin)")
		runID     = fs.String("run-id", "", "run `ID`; the ID of an unfinished run resumes it (default: a new ID)")
		server    = fs.String("server", "", "submit the run to the service at `URL` and follow it to the end (default $BULKHEAD_SERVER; FLOW's workflow must be in the service's workflows directory; token from $BULKHEAD_TOKEN or $BULKHEAD_TOKEN_FILE)")
		env       envFlags
	)
	env.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) != 1 {
		fprintf(stderr, "bulkhead run: want one workflow file, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	if *input != "" && *inputFile != "" {
		fprintf(stderr, "bulkhead run: use --input or --input-file, not both\n")
		return exitUsage
	}
	if *runID != "" && !checkID("run", "--run-id", *runID, stderr) {
		return exitUsage
	}
	flow := pos[0]
	if env.plugins == "" {
		env.plugins = defaultPluginsDir(flow)
	}
	var in []byte
	haveInput := *input != "" || *inputFile != ""
	switch {
	case *inputFile == "-":
		in, err = io.ReadAll(stdin)
	case *inputFile != "":
		in, err = os.ReadFile(*inputFile)
	default:
		in = []byte(*input)
	}
	if err != nil {
		fprintf(stderr, "bulkhead run: read input: %v\n", err)
		return exitUsage
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	rm, code := dialRemote("run", *server, stderr)
	if code != exitOK {
		return code
	}
	if rm != nil {
		return runRemote(ctx, rm, flow, in, *runID, env.progress == "none", stdout, stderr)
	}
	rt, code := openRuntime(ctx, "run", &env, stderr, true)
	if rt == nil {
		return code
	}
	defer rt.close(stderr)
	w, err := workflow.ParseFile(flow, workflow.ParseOptions{KnownPlugin: rt.known})
	if err != nil {
		fprintf(stderr, "bulkhead run: %s\n", userMessage(err.Error()))
		return exitUsage
	}
	if abs, err := filepath.Abs(flow); err == nil {
		w.File = abs
	}
	rt.engine.AddWorkflow(w)
	if err := addChildWorkflows(rt.engine, w, workflow.ParseOptions{KnownPlugin: rt.known}); err != nil {
		fprintf(stderr, "bulkhead run: %v\n", err)
		return exitUsage
	}
	if *runID != "" && !haveInput {
		// Resuming by ID needs no input: use the stored one.
		if r, err := rt.store.GetRun(ctx, *runID); err == nil {
			in = r.Input
		}
	}
	r, err := rt.engine.Submit(ctx, w.Name, in, *runID)
	if err != nil {
		fprintf(stderr, "bulkhead run: %v\n", err)
		if errors.Is(err, workflow.ErrConflict) {
			return exitUsage
		}
		return exitFailure
	}
	return rt.finish(rt.await(ctx, r.ID, stdout, stderr), stderr)
}

// runtime is what commands that execute runs share: store, host, engine.
type runtime struct {
	store   statestore.Store
	host    *host.Host
	sv      *supervisor.Supervisor // nil when the command loads no plugins
	engine  *workflow.Engine
	names   map[string]bool
	attempt map[string]int
	printer *progressPrinter
	cmd     string
	started bool
	closed  bool
}

type envFlags struct {
	data, store, plugins, progress string
	workers                        int
}

func (e *envFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) {
	fs.StringVar(&e.data, "data", "", "data `DIR` (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
	fs.StringVar(&e.store, "store", "", "state store `URL`: postgres://… for PostgreSQL (default $BULKHEAD_STORE, else the embedded store in the data directory)")
	fs.StringVar(&e.plugins, "plugins", "", "plugins `DIR` (default $BULKHEAD_PLUGINS, else plugins/ beside the workflow file, else ./plugins)")
	fs.StringVar(&e.progress, "progress", "auto", "progress on stderr: auto (live when stderr is a terminal), plain (one line per event), none")
	fs.IntVar(&e.workers, "workers", workflow.DefaultWorkers, "run at most `N` nodes at once")
}

func defaultPluginsDir(flow string) string {
	if v := os.Getenv("BULKHEAD_PLUGINS"); v != "" {
		return v
	}
	if flow != "" {
		d := filepath.Join(filepath.Dir(flow), "plugins")
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return "plugins"
}

// storeURL resolves the store URL: the flag, else BULKHEAD_STORE; ""
// is the embedded store in the data directory.
func storeURL(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv("BULKHEAD_STORE")
}

// storeSource names where storeURL(flagValue) came from, for errors.
func storeSource(flagValue string) string {
	if flagValue != "" {
		return "--store"
	}
	return "BULKHEAD_STORE"
}

// storeOpenTimeout bounds the connection to a PostgreSQL store.
const storeOpenTimeout = 30 * time.Second

// openStore opens the store of a command that works on it directly: the
// one --store (or BULKHEAD_STORE) names, else the data directory's. A
// data directory held by another process (a running service, usually)
// gets a hint to talk to that process with --server instead.
func openStore(cmd string, env *envFlags, stderr io.Writer) (statestore.Store, int) {
	url := storeURL(env.store)
	if err := server.CheckStoreURL(url); err != nil {
		fprintf(stderr, "bulkhead %s: %s: %v\n", cmd, storeSource(env.store), err)
		return nil, exitUsage
	}
	o := server.StoreOptions{URL: url, DataDir: dataDir(env.data)}
	if v := os.Getenv("BULKHEAD_FREE_SPACE_RESERVE"); v != "" {
		if n, err := abi.ParseSize(v); err == nil {
			o.Reserve = int64(n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	s, err := server.OpenStore(ctx, o)
	if errors.Is(err, badgerstore.ErrInUse) {
		fprintf(stderr, "bulkhead %s: %v\n"+
			"  the data directory is locked by another process, usually a running `bulkhead serve`:\n"+
			"  talk to it with --server http://HOST:PORT (or set BULKHEAD_SERVER)\n", cmd, err)
		return nil, exitUsage
	}
	if err != nil {
		hint := ""
		if url == "" {
			hint = storeHint(err, env.data)
		}
		fprintf(stderr, "bulkhead %s: %v\n%s", cmd, err, hint)
		return nil, exitUsage
	}
	return s, exitOK
}

// storeHint says what to do about an error opening the store ("" when
// there is nothing to add).
func storeHint(err error, data string) string {
	flag := ""
	if data != "" {
		flag = " --data " + data
	}
	switch {
	case errors.Is(err, badgerstore.ErrCorrupt):
		return "  run `bulkhead store check" + flag + "` to see what is damaged and `bulkhead store repair" + flag + "` to recover it\n"
	case errors.Is(err, statestore.ErrNoSpace):
		return "  free space on the data directory's file system, or lower the reserve (BULKHEAD_FREE_SPACE_RESERVE)\n"
	}
	return ""
}

// openRuntime opens the store, starts a host with every plugin of the
// plugins directory loaded (when withPlugins) and an engine that resumes
// nothing by itself.
func openRuntime(ctx context.Context, cmd string, env *envFlags, stderr io.Writer, withPlugins bool) (*runtime, int) {
	mode := env.progress
	if mode == "auto" {
		mode = "none"
		if isTerminal(stderr) {
			mode = "live"
		}
	}
	if mode != "live" && mode != "plain" && mode != "none" {
		fprintf(stderr, "bulkhead %s: --progress wants auto, plain or none, got %q\n", cmd, env.progress)
		return nil, exitUsage
	}
	if env.workers < 1 {
		fprintf(stderr, "bulkhead %s: --workers must be at least 1\n", cmd)
		return nil, exitUsage
	}
	store, code := openStore(cmd, env, stderr)
	if store == nil {
		return nil, code
	}
	rt := &runtime{store: store, names: map[string]bool{}, attempt: map[string]int{}, cmd: cmd}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	h, err := host.New(host.WithLogger(logger), host.WithCacheDir(cacheDir(dataDir(env.data))))
	if err == nil {
		err = h.Start(ctx)
	}
	if err != nil {
		store.Close()
		fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	rt.host = h
	if withPlugins {
		if err := rt.loadPlugins(ctx, env.plugins, logger, stderr); err != nil {
			rt.close(io.Discard)
			fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
			return nil, exitUsage
		}
	}
	rt.printer = &progressPrinter{w: stderr, mode: mode, done: map[string]bool{}, prog: map[string]statestore.Progress{}}
	e, err := workflow.New(store, h, workflow.WithResumeOnStart(false), workflow.WithWorkers(env.workers),
		workflow.WithObserver(rt.printer.observe), workflow.WithLogger(logger),
		workflow.WithMaxAttempts(func(p string) int { return rt.attempt[p] }))
	if err == nil {
		err = e.Start(ctx)
	}
	if err != nil {
		rt.close(io.Discard)
		fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	rt.engine, rt.started = e, true
	return rt, exitOK
}

func (rt *runtime) known(name string) bool { return rt.names[name] }

// loadPlugins loads every plugin of dir through the loader every command
// shares (server.NewLoader): the same sidecar parsing and checks as `serve`
// and `plugins ls`. A plugin the loader refuses or quarantines is skipped
// with its reason; the loads run at once, so a module that is slow to load
// delays no other.
func (rt *runtime) loadPlugins(ctx context.Context, dir string, logger *slog.Logger, stderr io.Writer) error {
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("plugins directory: %w", plainPathError(err))
	} else if !st.IsDir() {
		return fmt.Errorf("plugins directory %s is not a directory", dir)
	}
	sv, err := server.NewLoader(rt.host, dir, server.LoaderOptions{Logger: logger})
	if err != nil {
		return err
	}
	rt.sv = sv
	if err := sv.Start(ctx); err != nil {
		return err
	}
	if err := sv.WaitReady(ctx); err != nil {
		return err
	}
	for _, st := range sv.Statuses() {
		if sv.Check(st.Name) != nil {
			fprintf(stderr, "bulkhead %s: skipping plugin %s (%s): %s\n", rt.cmd, st.Name, st.State, userMessage(st.Reason))
			continue
		}
		if info, ok := sv.Registry().Get(st.Name); ok && (info.Manifest.Preset != "" || info.Manifest.PolicyYAML != nil) {
			if pol, err := sv.Policy(st.Name); err == nil {
				rt.attempt[st.Name] = pol.WithDefaults().Retry.MaxAttempts
			}
		}
		rt.names[st.Name] = true
	}
	return nil
}

// close stops the engine and the host and closes the store. It reports
// whether the store closed; when it did not (a full disk, the directory
// removed), the command must exit non-zero.
func (rt *runtime) close(stderr io.Writer) bool {
	if rt.closed {
		return true
	}
	rt.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), drainGrace)
	defer cancel()
	if rt.engine != nil {
		if err := rt.engine.Stop(ctx); err != nil {
			fprintf(stderr, "bulkhead %s: %v\n", rt.cmd, err)
		}
	}
	if rt.sv != nil {
		_ = rt.sv.Stop(ctx)
	}
	if rt.host != nil {
		_ = rt.host.Stop(ctx)
	}
	if err := rt.store.Close(); err != nil {
		fprintf(stderr, "bulkhead %s: close store: %v\n", rt.cmd, err)
		return false
	}
	return true
}

// finish closes rt after the command's work and returns its exit status:
// code, or exitFailure when the store did not close.
func (rt *runtime) finish(code int, stderr io.Writer) int {
	if !rt.close(stderr) && code == exitOK {
		return exitFailure
	}
	return code
}

// await waits for a run, prints its output or failure and returns the
// exit status.
func (rt *runtime) await(ctx context.Context, id string, stdout, stderr io.Writer) int {
	r, err := rt.engine.Wait(ctx, id)
	rt.printer.finish()
	if err != nil {
		if ctx.Err() != nil {
			fprintf(stderr, "bulkhead %s: interrupted; run %s is unfinished: resume it with --run-id %s\n", rt.cmd, id, id)
			return exitFailure
		}
		fprintf(stderr, "bulkhead %s: %v\n", rt.cmd, err)
		return exitFailure
	}
	switch r.Status {
	case statestore.StatusSucceeded:
		stdout.Write(r.Output)
		return exitOK
	case statestore.StatusFailed:
		fprintf(stderr, "bulkhead %s: run %s failed: %s\n", rt.cmd, id, r.Error)
		if dl := r.Attrs[workflow.AttrDeadLetter]; dl != "" {
			fprintf(stderr, "dead letter: %s (inspect: bulkhead dlq show %s; replay: bulkhead dlq replay %s)\n", dl, dl, dl)
		}
		return exitFailure
	case statestore.StatusCancelled:
		fprintf(stderr, "bulkhead %s: run %s was cancelled\n", rt.cmd, id)
		return exitFailure
	}
	fprintf(stderr, "bulkhead %s: run %s stopped unfinished (%s); resume it with --run-id %s\n", rt.cmd, id, r.Error, id)
	return exitFailure
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows a run's events on stderr: one line per event
// (plain) or a status line rewritten in place (live).
type progressPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	mode  string
	done  map[string]bool
	prog  map[string]statestore.Progress
	last  time.Time
	shown bool
}

func (p *progressPrinter) clear() {
	if p.shown {
		fprintf(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progressPrinter) observe(ev workflow.Event) {
	if p.mode == "none" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var line string
	switch ev.Kind {
	case workflow.EventRunStarted:
		if ev.Resumed {
			line = fmt.Sprintf("run %s resumed", ev.RunID)
		} else {
			line = fmt.Sprintf("run %s started", ev.RunID)
		}
	case workflow.EventNodeSkipped:
		p.done[ev.Node] = true
		line = fmt.Sprintf("node %s finished before (attempt %d): not run again", ev.Node, ev.Attempt)
	case workflow.EventNodeBypassed:
		line = fmt.Sprintf("node %s skipped: its condition is false or its needs were skipped", ev.Node)
	case workflow.EventNodeWaiting:
		line = waitingLine(ev)
	case workflow.EventNodeStarted:
		line = fmt.Sprintf("node %s started (attempt %d)", ev.Node, ev.Attempt)
	case workflow.EventNodeFinished:
		p.done[ev.Node] = true
		delete(p.prog, ev.Node)
		if ev.Attempt > 0 { // 0: skipped, reported above
			line = fmt.Sprintf("node %s finished (attempt %d)", ev.Node, ev.Attempt)
		}
	case workflow.EventNodeFailed:
		line = fmt.Sprintf("node %s failed: %s", ev.Node, ev.Err)
	case workflow.EventCheckpointLoaded:
		line = fmt.Sprintf("node %s resumed from checkpoint #%d", ev.Node, ev.Seq)
	case workflow.EventCheckpointSaved:
		if p.mode == "plain" {
			line = fmt.Sprintf("node %s saved checkpoint #%d", ev.Node, ev.Seq)
		}
	case workflow.EventProgress:
		p.prog[ev.Node] = ev.Progress
	case workflow.EventRunFinished:
		line = fmt.Sprintf("run %s %s", ev.RunID, ev.Status)
	}
	if p.mode == "plain" {
		if line != "" {
			fprintf(p.w, "bulkhead: %s\n", line)
		}
		return
	}
	// live: important lines scroll, the status line is redrawn at most 10×/s.
	if line != "" && ev.Kind != workflow.EventNodeStarted && ev.Kind != workflow.EventNodeFinished {
		p.clear()
		fprintf(p.w, "bulkhead: %s\n", line)
	}
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.clear()
	names := make([]string, 0, len(p.prog))
	for n := range p.prog {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes done", len(p.done))
	for _, n := range names {
		pr := p.prog[n]
		fmt.Fprintf(&b, " | %s %d/%d", n, pr.Done, pr.Total)
		if pr.Message != "" {
			fmt.Fprintf(&b, " %s", pr.Message)
		}
	}
	fprintf(p.w, "%s", b.String())
	p.shown = true
}

func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}
