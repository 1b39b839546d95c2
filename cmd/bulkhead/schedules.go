package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/host/workflow"
)

const schedulesSynopsis = "schedules ls [--json] [--server URL | --workflows DIR [--store URL | --data DIR]]"

// runSchedules lists the workflows' schedules: cron, overlap and catch-up
// policies, the last due time handled and its run, the next due time. It
// asks a running service (--server), or reads the workflow files and the
// store itself.
func runSchedules(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	sub, args, code, ok := splitSubcommand(args, schedulesSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	if sub != "ls" {
		fprintf(stderr, "bulkhead schedules: unknown subcommand %q\nUsage: bulkhead %s\n", sub, schedulesSynopsis)
		return exitUsage
	}
	fs := newFlagSet("schedules ls", schedulesSynopsis, stdout, stderr)
	var env envFlags
	fs.StringVar(&env.data, "data", "", "data `DIR` (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
	fs.StringVar(&env.store, "store", "", "state store `URL`: postgres://… for PostgreSQL (default $BULKHEAD_STORE, else the embedded store in the data directory)")
	dir := fs.String("workflows", "", "workflow `DIR` (default $BULKHEAD_WORKFLOWS, else ./"+server.DefaultWorkflowsDir+")")
	asJSON := jsonFlag(fs, "print JSON")
	srv := serverFlag(fs)
	if _, code, ok := parseSubcommand(fs, args, "schedules ls", 0, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rm, code := dialRemote("schedules ls", *srv, stderr)
	if code != exitOK {
		return code
	}
	var list []workflow.ScheduleInfo
	if rm != nil {
		var err error
		if list, err = rm.c.Schedules(ctx); err != nil {
			return rm.fail(err, exitUsage, stderr)
		}
	} else {
		if *dir == "" {
			*dir = os.Getenv("BULKHEAD_WORKFLOWS")
		}
		if *dir == "" {
			*dir = server.DefaultWorkflowsDir
		}
		ws, err := workflow.LoadDir(*dir, workflow.ParseOptions{})
		if err != nil && len(ws) == 0 {
			fprintf(stderr, "bulkhead schedules ls: %v\n", err)
			return exitUsage
		} else if err != nil {
			fprintf(stderr, "bulkhead schedules ls: skipped workflow files with problems: %v\n", err)
		}
		code := withStore("schedules ls", &env, stderr, func(e *workflow.Engine) int {
			for _, w := range ws {
				e.AddWorkflow(w)
			}
			if list, err = e.Schedules(ctx); err != nil {
				fprintf(stderr, "bulkhead schedules ls: %v\n", err)
				return exitFailure
			}
			return exitOK
		})
		if code != exitOK {
			return code
		}
	}
	if *asJSON {
		if list == nil {
			list = []workflow.ScheduleInfo{}
		}
		return printJSON(stdout, map[string]any{"schedules": list})
	}
	printSchedules(stdout, list, time.Now())
	return exitOK
}

func printSchedules(w io.Writer, list []workflow.ScheduleInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fprintf(tw, "WORKFLOW\tCRON\tOVERLAP\tCATCH UP\tLAST\tLAST RUN\tNEXT\n")
	for _, s := range list {
		last := "-"
		if !s.Last.IsZero() {
			last = s.Last.UTC().Format(time.RFC3339)
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Workflow, s.Cron, s.Overlap, s.CatchUp, last, orDash(s.LastRun), dueText(s.Next, now))
	}
	tw.Flush()
}
