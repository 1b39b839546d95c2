package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const runsSynopsis = "runs ls [--status S] [--limit N] [--after CURSOR] [-o json] | show ID [--follow] [-o json] | wait ID | cancel ID | resume ID [--upgrade] [--plugins DIR] | signal ID EVENT [--payload JSON] [--id EVENT_ID] [--data DIR | --store URL | --server URL]"

func runRuns(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub, args, code, ok := splitSubcommand(args, runsSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	fs := newFlagSet("runs "+sub, runsSynopsis, stdout, stderr)
	var (
		env     envFlags
		status  = fs.String("status", "", "list only runs in `STATE` (pending, running, succeeded, failed, cancelled)")
		limit   = fs.Int("limit", 50, "list at most `N` runs")
		after   = fs.String("after", "", "list from `CURSOR` (printed after the previous page)")
		asJSON  = jsonFlag(fs, "print JSON")
		upgrade = fs.Bool("upgrade", false, "resume on the plugin versions loaded now")
		follow  = fs.BoolP("follow", "f", false, "show: follow the run on the service, a line per change on stderr, until it finishes")
		server  = serverFlag(fs)
		payload = fs.String("payload", "", "signal: the event's payload, a JSON value (default null)")
		eventID = fs.String("id", "", "signal: the event's `ID`; sending an ID again delivers nothing (default: a new one)")
	)
	env.register(fs)
	want := 1
	switch sub {
	case "ls":
		want = 0
	case "signal":
		want = 2
	}
	pos, code, ok := parseSubcommand(fs, args, "runs "+sub, want, stderr)
	if !ok {
		return code
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	rm, code := dialRemote("runs "+sub, *server, stderr)
	if code != exitOK {
		return code
	}
	switch sub {
	case "ls":
		f := statestore.RunFilter{Status: statestore.RunStatus(*status), Limit: *limit, After: *after, Newest: true}
		if rm != nil {
			page, err := rm.c.Runs(ctx, f)
			if err != nil {
				return rm.fail(err, exitUsage, stderr)
			}
			return printRuns(stdout, page.Runs, page.Next, *asJSON)
		}
		return withStore("runs ls", &env, stderr, func(e *workflow.Engine) int {
			runs, next, err := e.List(ctx, f)
			if err != nil {
				fprintf(stderr, "bulkhead runs ls: %v\n", err)
				return exitUsage
			}
			return printRuns(stdout, runs, next, *asJSON)
		})
	case "show":
		show := func(info workflow.RunInfo) int {
			if *asJSON {
				return printJSON(stdout, info)
			}
			printRun(stdout, info)
			return exitOK
		}
		if rm != nil {
			var info workflow.RunInfo
			var err error
			if *follow {
				var code int
				var ok bool
				if info, code, ok = rm.follow(ctx, pos[0], stderr, stderr); !ok {
					return code
				}
			} else if info, err = rm.c.Run(ctx, pos[0]); err != nil {
				return rm.fail(err, exitFailure, stderr)
			}
			return show(info)
		}
		if *follow {
			fprintf(stderr, "bulkhead runs show: --follow needs --server (or $BULKHEAD_SERVER): only a running service makes progress\n")
			return exitUsage
		}
		return withStore("runs show", &env, stderr, func(e *workflow.Engine) int {
			info, err := e.Get(ctx, pos[0])
			if err != nil {
				fprintf(stderr, "bulkhead runs show: %v\n", err)
				return exitFailure
			}
			return show(info)
		})
	case "wait":
		// Wait for the run to finish; print its output or failure like
		// run; the exit status is its outcome.
		if rm != nil {
			info, code, ok := rm.follow(ctx, pos[0], nil, stderr)
			if !ok {
				return code
			}
			return printFinished("runs wait", info.Run, stdout, stderr)
		}
		return withStore("runs wait", &env, stderr, func(e *workflow.Engine) int {
			info, err := e.Get(ctx, pos[0])
			if err != nil {
				fprintf(stderr, "bulkhead runs wait: %v\n", err)
				return exitFailure
			}
			if !info.Status.Finished() {
				fprintf(stderr, "bulkhead runs wait: run %s is %s and nothing runs it here: wait on the service that runs it (--server URL), or resume it with bulkhead runs resume %s\n", info.ID, info.Status, info.ID)
				return exitUsage
			}
			return printFinished("runs wait", info.Run, stdout, stderr)
		})
	case "cancel":
		if rm != nil {
			r, err := rm.c.Cancel(ctx, pos[0])
			if err != nil {
				return rm.fail(err, exitFailure, stderr)
			}
			fprintf(stdout, "run %s %s\n", r.ID, r.Status)
			return exitOK
		}
		return withStore("runs cancel", &env, stderr, func(e *workflow.Engine) int {
			r, err := e.Cancel(ctx, pos[0])
			if err != nil {
				fprintf(stderr, "bulkhead runs cancel: %v\n", err)
				return exitFailure
			}
			fprintf(stdout, "run %s %s\n", r.ID, r.Status)
			return exitOK
		})
	case "resume":
		if rm != nil {
			r, err := rm.c.Resume(ctx, pos[0], *upgrade)
			if err != nil {
				code := exitFailure
				if notFound(err) {
					code = exitUsage
				}
				return rm.fail(err, code, stderr)
			}
			return rm.await(ctx, r.ID, stdout, stderr)
		}
		return resumeRun(ctx, "runs resume", &env, pos[0], "", *upgrade, stdout, stderr)
	}
	if sub == "signal" {
		return signalRun(ctx, rm, &env, pos[0], pos[1], *eventID, []byte(*payload), *asJSON, stdout, stderr)
	}
	fprintf(stderr, "bulkhead runs: unknown subcommand %q\nUsage: bulkhead %s\n", sub, runsSynopsis)
	return exitUsage
}

// printRuns prints a page of runs as a table, or as JSON.
func printRuns(w io.Writer, runs []statestore.Run, next string, asJSON bool) int {
	if asJSON {
		if runs == nil {
			runs = []statestore.Run{}
		}
		return printJSON(w, map[string]any{"runs": runs, "next": next})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workflow, r.Status, r.CreatedAt.Local().Format(time.DateTime), oneLine(r.Error, 60))
	}
	tw.Flush()
	if next != "" {
		fprintf(w, "more: --after %s\n", next)
	}
	return exitOK
}

// withStore runs fn with an engine over the configured store and no
// plugins (enough to read and cancel runs).
func withStore(cmd string, env *envFlags, stderr io.Writer, fn func(*workflow.Engine) int) int {
	store, code := openStore(cmd, env, stderr)
	if store == nil {
		return code
	}
	defer store.Close()
	e, err := workflow.New(store, noPlugins{})
	if err != nil {
		fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
		return exitUsage
	}
	return fn(e)
}

// resumeRun resumes a run (or replays a dead letter when dl is set) in the
// foreground and prints its result like run.
func resumeRun(ctx context.Context, cmd string, env *envFlags, runID, dl string, upgrade bool, stdout, stderr io.Writer) int {
	// Open the store once first: a store that cannot be opened is
	// reported with its hint, and the run tells where its plugins are.
	store, code := openStore(cmd, env, stderr)
	if store == nil {
		return code
	}
	if env.plugins == "" {
		// The plugins beside the workflow file the run came from.
		id := runID
		if dl != "" {
			if d, err := store.GetDeadLetter(ctx, dl); err == nil {
				id = d.RunID
			}
		}
		if r, err := store.GetRun(ctx, id); err == nil && r.Attrs[workflow.AttrFile] != "" {
			env.plugins = defaultPluginsDir(r.Attrs[workflow.AttrFile])
		}
		if env.plugins == "" {
			env.plugins = defaultPluginsDir("")
		}
	}
	if err := store.Close(); err != nil {
		fprintf(stderr, "bulkhead %s: close store: %v\n", cmd, err)
		return exitUsage
	}
	rt, code := openRuntime(ctx, cmd, env, stderr, true)
	if rt == nil {
		return code
	}
	defer rt.close(stderr)
	var r statestore.Run
	var err error
	if dl != "" {
		r, err = rt.engine.Replay(ctx, dl, upgrade)
	} else {
		r, err = rt.engine.Resume(ctx, runID, upgrade)
	}
	if err != nil {
		fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
		if errors.Is(err, workflow.ErrNotFound) {
			return exitUsage
		}
		return exitFailure
	}
	return rt.finish(rt.await(ctx, r.ID, stdout, stderr), stderr)
}

func printRun(w io.Writer, info workflow.RunInfo) {
	fprintf(w, "run:      %s\nworkflow: %s\nstatus:   %s\ncreated:  %s\n", info.ID, info.Workflow, info.Status, info.CreatedAt.Local().Format(time.DateTime))
	if !info.FinishedAt.IsZero() {
		fprintf(w, "finished: %s\n", info.FinishedAt.Local().Format(time.DateTime))
	}
	if info.Error != "" {
		fprintf(w, "error:    %s\n", info.Error)
	}
	if dl := info.Attrs[workflow.AttrDeadLetter]; dl != "" {
		fprintf(w, "dead letter: %s\n", dl)
	}
	fprintf(w, "\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tATTEMPT\tVERSION\tHOST\tPROGRESS\tOUTPUT")
	now := time.Now()
	for _, n := range info.Nodes {
		prog := nodeProgress(n)
		status := nodeStatus(n, now)
		if n.Fallback {
			status += " (fallback)"
		}
		host := n.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, status, n.Attempts, digest.Short(n.Version), host, prog, oneLine(string(n.Output), 50))
	}
	tw.Flush()
	printEvents(w, info)
	if info.Status == statestore.StatusSucceeded {
		fprintf(w, "\noutput: %s\n", oneLine(string(info.Output), 200))
	}
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}
