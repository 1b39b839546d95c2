package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const dlqSynopsis = "dlq ls [--run ID] [--limit N] [--after ID] [--json] | show ID [--json] | replay ID [--upgrade] [--plugins DIR] | purge  [--data DIR | --store URL | --server URL]"

func runDLQ(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub, args, code, ok := splitSubcommand(args, dlqSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	fs := newFlagSet("dlq "+sub, dlqSynopsis, stdout, stderr)
	var (
		env     envFlags
		run     = fs.String("run", "", "list only the dead letters of run `ID`")
		limit   = fs.Int("limit", 50, "list at most `N`")
		after   = fs.String("after", "", "list after dead letter `ID`")
		asJSON  = jsonFlag(fs, "print JSON")
		upgrade = fs.Bool("upgrade", false, "replay on the newest plugin versions (those in the plugins directory now)")
		server  = serverFlag(fs)
	)
	env.register(fs)
	want := 1
	if sub == "ls" || sub == "purge" {
		want = 0
	}
	pos, code, ok := parseSubcommand(fs, args, "dlq "+sub, want, stderr)
	if !ok {
		return code
	}
	for _, f := range []struct{ name, v string }{{"--run", *run}, {"--after", *after}} {
		if f.v != "" && !checkID("dlq "+sub, f.name, f.v, stderr) {
			return exitUsage
		}
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	rm, code := dialRemote("dlq "+sub, *server, stderr)
	if code != exitOK {
		return code
	}
	switch sub {
	case "ls":
		f := statestore.DeadLetterFilter{RunID: *run, Limit: *limit, After: *after}
		if rm != nil {
			page, err := rm.c.DeadLetters(ctx, f)
			if err != nil {
				return rm.fail(err, exitUsage, stderr)
			}
			return printDeadLetters(stdout, page.DeadLetters, page.Next, *asJSON)
		}
		return withStore("dlq ls", &env, stderr, func(e *workflow.Engine) int {
			dls, next, err := e.DeadLetters(ctx, f)
			if err != nil {
				fprintf(stderr, "bulkhead dlq ls: %v\n", err)
				return exitUsage
			}
			return printDeadLetters(stdout, dls, next, *asJSON)
		})
	case "show":
		if rm != nil {
			d, err := rm.c.DeadLetter(ctx, pos[0])
			if err != nil {
				return rm.fail(err, exitFailure, stderr)
			}
			return printDeadLetter(stdout, d, *asJSON)
		}
		return withStore("dlq show", &env, stderr, func(e *workflow.Engine) int {
			d, err := e.DeadLetter(ctx, pos[0])
			if err != nil {
				fprintf(stderr, "bulkhead dlq show: %v\n", err)
				return exitFailure
			}
			return printDeadLetter(stdout, d, *asJSON)
		})
	case "replay":
		if rm != nil {
			res, err := rm.c.Replay(ctx, pos[0], *upgrade)
			if err != nil {
				code := exitFailure
				if notFound(err) {
					code = exitUsage
				}
				return rm.fail(err, code, stderr)
			}
			return rm.await(ctx, res.RunID, stdout, stderr)
		}
		return resumeRun(ctx, "dlq replay", &env, "", pos[0], *upgrade, stdout, stderr)
	case "purge":
		if rm != nil {
			return purgeRemote(ctx, rm, stdout, stderr)
		}
		return withStore("dlq purge", &env, stderr, func(e *workflow.Engine) int {
			n, err := e.PurgeDeadLetters(ctx)
			if err != nil {
				fprintf(stderr, "bulkhead dlq purge: %v\n", err)
				return exitFailure
			}
			fprintf(stdout, "purged %d dead letters\n", n)
			return exitOK
		})
	}
	fprintf(stderr, "bulkhead dlq: unknown subcommand %q\nUsage: bulkhead %s\n", sub, dlqSynopsis)
	return exitUsage
}

// purgeRemote deletes every dead letter of the service: it lists them
// all, then deletes them one by one. A dead letter that is gone by the
// time its turn comes (replayed meanwhile) is not counted; one written
// after the listing is kept.
func purgeRemote(ctx context.Context, rm *remote, stdout, stderr io.Writer) int {
	var ids []string
	after := ""
	for {
		page, err := rm.c.DeadLetters(ctx, statestore.DeadLetterFilter{Limit: 1000, After: after})
		if err != nil {
			return rm.fail(err, exitFailure, stderr)
		}
		for _, d := range page.DeadLetters {
			ids = append(ids, d.ID)
		}
		if page.Next == "" || len(page.DeadLetters) == 0 {
			break
		}
		after = page.Next
	}
	n := 0
	for _, id := range ids {
		if err := rm.c.DeleteDeadLetter(ctx, id); err != nil {
			if notFound(err) {
				continue
			}
			fprintf(stdout, "purged %d dead letters\n", n)
			return rm.fail(err, exitFailure, stderr)
		}
		n++
	}
	fprintf(stdout, "purged %d dead letters\n", n)
	return exitOK
}

// printDeadLetters prints a page of dead letters as a table, or as JSON.
func printDeadLetters(w io.Writer, dls []statestore.DeadLetter, next string, asJSON bool) int {
	if asJSON {
		if dls == nil {
			dls = []statestore.DeadLetter{}
		}
		return printJSON(w, map[string]any{"dead_letters": dls, "next": next})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRUN\tNODE\tVERSION\tATTEMPTS\tCREATED\tLAST ERROR")
	for _, d := range dls {
		last := ""
		if len(d.Attempts) > 0 {
			last = d.Attempts[len(d.Attempts)-1].Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.RunID, d.Node, digest.Short(d.PluginVersion), len(d.Attempts),
			d.CreatedAt.Local().Format(time.DateTime), oneLine(last, 60))
	}
	tw.Flush()
	if next != "" {
		fprintf(w, "more: --after %s\n", next)
	}
	return exitOK
}

// printDeadLetter prints one dead letter with its attempts, or as JSON.
func printDeadLetter(w io.Writer, d statestore.DeadLetter, asJSON bool) int {
	if asJSON {
		return printJSON(w, d)
	}
	fprintf(w, "dead letter: %s\nrun:         %s\nworkflow:    %s\nnode:        %s\nversion:     %s\ncreated:     %s\ninput:       %s\nattempts:\n",
		d.ID, d.RunID, d.Workflow, d.Node, d.PluginVersion, d.CreatedAt.Local().Format(time.DateTime), oneLine(string(d.Input), 200))
	for _, a := range d.Attempts {
		fprintf(w, "  #%d %s  %s\n", a.Attempt, a.At.Local().Format(time.TimeOnly), a.Error)
	}
	return exitOK
}

// noPlugins is the invoker of commands that only read the store.
type noPlugins struct{}

func (noPlugins) Invoke(context.Context, host.InvokeRequest) (host.InvokeResult, error) {
	return host.InvokeResult{}, host.ErrNoPlugin
}
func (noPlugins) Plugin(string) (host.PluginInfo, bool) { return host.PluginInfo{}, false }
