package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const dlqSynopsis = "dlq ls [--run ID] [--limit N] [--after ID] | show ID [--json] | replay ID [--upgrade] [--plugins DIR] | purge  [--data DIR]"

func runDLQ(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fprintf(stderr, "Usage: bulkhead %s\n", dlqSynopsis)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("dlq "+sub, dlqSynopsis, stderr)
	var (
		env     envFlags
		run     = fs.String("run", "", "list only the dead letters of run `ID`")
		limit   = fs.Int("limit", 50, "list at most `N`")
		after   = fs.String("after", "", "list after dead letter `ID`")
		asJSON  = fs.Bool("json", false, "print JSON")
		upgrade = fs.Bool("upgrade", false, "replay on the newest plugin versions (those in the plugins directory now)")
	)
	env.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	want := 1
	if sub == "ls" || sub == "purge" {
		want = 0
	}
	if len(pos) != want {
		fprintf(stderr, "bulkhead dlq %s: want %d argument(s), got %d\n", sub, want, len(pos))
		return exitUsage
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	switch sub {
	case "ls":
		return withStore("dlq ls", &env, stderr, func(e *workflow.Engine) int {
			dls, next, err := e.DeadLetters(ctx, statestore.DeadLetterFilter{RunID: *run, Limit: *limit, After: *after})
			if err != nil {
				fprintf(stderr, "bulkhead dlq ls: %v\n", err)
				return exitUsage
			}
			if *asJSON {
				return printJSON(stdout, map[string]any{"dead_letters": dls, "next": next})
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRUN\tNODE\tVERSION\tATTEMPTS\tCREATED\tLAST ERROR")
			for _, d := range dls {
				last := ""
				if len(d.Attempts) > 0 {
					last = d.Attempts[len(d.Attempts)-1].Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.RunID, d.Node, short(d.PluginVersion), len(d.Attempts),
					d.CreatedAt.Local().Format(time.DateTime), oneLine(last, 60))
			}
			tw.Flush()
			if next != "" {
				fprintf(stdout, "more: --after %s\n", next)
			}
			return exitOK
		})
	case "show":
		return withStore("dlq show", &env, stderr, func(e *workflow.Engine) int {
			d, err := e.DeadLetter(ctx, pos[0])
			if err != nil {
				fprintf(stderr, "bulkhead dlq show: %v\n", err)
				return exitFailure
			}
			if *asJSON {
				return printJSON(stdout, d)
			}
			fprintf(stdout, "dead letter: %s\nrun:         %s\nworkflow:    %s\nnode:        %s\nversion:     %s\ncreated:     %s\ninput:       %s\nattempts:\n",
				d.ID, d.RunID, d.Workflow, d.Node, d.PluginVersion, d.CreatedAt.Local().Format(time.DateTime), oneLine(string(d.Input), 200))
			for _, a := range d.Attempts {
				fprintf(stdout, "  #%d %s  %s\n", a.Attempt, a.At.Local().Format(time.TimeOnly), a.Error)
			}
			return exitOK
		})
	case "replay":
		return resumeRun(ctx, "dlq replay", &env, "", pos[0], *upgrade, stdout, stderr)
	case "purge":
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

// noPlugins is the invoker of commands that only read the store.
type noPlugins struct{}

func (noPlugins) Invoke(context.Context, host.InvokeRequest) (host.InvokeResult, error) {
	return host.InvokeResult{}, host.ErrNoPlugin
}
func (noPlugins) Plugin(string) (host.PluginInfo, bool) { return host.PluginInfo{}, false }
