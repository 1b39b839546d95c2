package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// signalRun delivers an external event to a run: on the service with
// --server, else through the store.
func signalRun(ctx context.Context, rm *remote, env *envFlags, runID, name, eventID string, payload []byte, asJSON bool,
	stdout, stderr io.Writer) int {
	if len(payload) > 0 && !json.Valid(payload) {
		fprintf(stderr, "bulkhead runs signal: --payload is not JSON: %s\n", oneLine(string(payload), 80))
		return exitUsage
	}
	print := func(res workflow.SignalResult) int {
		if asJSON {
			return printJSON(stdout, res)
		}
		if res.Delivered {
			fprintf(stdout, "event %s (ID %s) delivered to run %s\n", res.Event, res.ID, res.RunID)
		} else {
			fprintf(stdout, "event %s (ID %s) had been delivered to run %s: nothing changed\n", res.Event, res.ID, res.RunID)
		}
		return exitOK
	}
	if rm != nil {
		res, err := rm.c.Signal(ctx, runID, name, eventID, payload)
		if err != nil {
			return rm.fail(err, exitFailure, stderr)
		}
		return print(res)
	}
	return withStore("runs signal", env, stderr, func(e *workflow.Engine) int {
		res, err := e.Signal(ctx, runID, name, eventID, payload)
		if err != nil {
			fprintf(stderr, "bulkhead runs signal: %v\n", err)
			return exitFailure
		}
		return print(res)
	})
}

// printEvents lists the external events delivered to a run.
func printEvents(w io.Writer, info workflow.RunInfo) {
	evs := workflow.Events(info.Run)
	if len(evs) == 0 {
		return
	}
	fprintf(w, "\nevents:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  EVENT\tID\tRECEIVED\tPAYLOAD")
	for _, ev := range evs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ev.Name, ev.ID, ev.At.Local().Format(time.DateTime), oneLine(string(ev.Data), 50))
	}
	tw.Flush()
}
