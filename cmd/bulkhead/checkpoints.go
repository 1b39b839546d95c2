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

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const checkpointsSynopsis = "checkpoints ls RUN [NODE] [--json] [--data DIR | --store URL | --server URL]"

func runCheckpoints(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "ls" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			args = []string{"ls", "--help"}
		} else {
			fprintf(stderr, "Usage: bulkhead %s\n", checkpointsSynopsis)
			return exitUsage
		}
	}
	fs := newFlagSet("checkpoints ls", checkpointsSynopsis, stdout, stderr)
	var env envFlags
	asJSON := jsonFlag(fs, "print JSON (with the data)")
	server := serverFlag(fs)
	env.register(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) < 1 || len(pos) > 2 {
		fprintf(stderr, "bulkhead checkpoints ls: want RUN [NODE], got %d arguments\n", len(pos))
		return exitUsage
	}
	for _, id := range pos {
		if !checkID("checkpoints ls", "ID", id, stderr) {
			return exitUsage
		}
	}
	node := ""
	if len(pos) == 2 {
		node = pos[1]
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	rm, code := dialRemote("checkpoints ls", *server, stderr)
	if code != exitOK {
		return code
	}
	if rm != nil {
		views, err := rm.c.Checkpoints(ctx, pos[0], node, true)
		if err != nil {
			return rm.fail(err, exitFailure, stderr)
		}
		cps := make([]statestore.Checkpoint, 0, len(views))
		for _, v := range views {
			at, err := time.Parse(time.RFC3339Nano, v.CreatedAt)
			if err != nil {
				fprintf(stderr, "bulkhead checkpoints ls: %s: checkpoint %s/%d: created_at %q: %v\n", rm.url, v.Node, v.Seq, v.CreatedAt, err)
				return exitFailure
			}
			cps = append(cps, statestore.Checkpoint{RunID: pos[0], Node: v.Node, Seq: v.Seq, Data: v.Data, CreatedAt: at})
		}
		return printCheckpoints(stdout, cps, *asJSON)
	}
	return withStore("checkpoints ls", &env, stderr, func(e *workflow.Engine) int {
		cps, err := e.Checkpoints(ctx, pos[0], node)
		if err != nil {
			fprintf(stderr, "bulkhead checkpoints ls: %v\n", err)
			return exitFailure
		}
		return printCheckpoints(stdout, cps, *asJSON)
	})
}

// printCheckpoints prints checkpoints as a table, or as JSON with their
// data.
func printCheckpoints(w io.Writer, cps []statestore.Checkpoint, asJSON bool) int {
	if asJSON {
		out := make([]checkpointJSON, len(cps))
		for i, c := range cps {
			out[i] = checkpointJSON(c)
		}
		return printJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSEQ\tBYTES\tCREATED\tDATA")
	for _, c := range cps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", c.Node, c.Seq, len(c.Data), c.CreatedAt.Local().Format(time.DateTime+".000"), oneLine(string(c.Data), 60))
	}
	tw.Flush()
	return exitOK
}

// checkpointJSON is a checkpoint as `checkpoints ls -o json` prints it.
type checkpointJSON struct {
	RunID     string    `json:"run_id"`
	Node      string    `json:"node"`
	Seq       uint64    `json:"seq"`
	Data      []byte    `json:"data"`
	CreatedAt time.Time `json:"created_at"`
}
