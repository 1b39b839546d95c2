package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

const checkpointsSynopsis = "checkpoints ls RUN [NODE] [--json] [--data DIR]"

func runCheckpoints(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "ls" {
		fprintf(stderr, "Usage: bulkhead %s\n", checkpointsSynopsis)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fs := newFlagSet("checkpoints ls", checkpointsSynopsis, stderr)
	var env envFlags
	asJSON := fs.Bool("json", false, "print JSON (with the data)")
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
	node := ""
	if len(pos) == 2 {
		node = pos[1]
	}
	return withStore("checkpoints ls", &env, stderr, func(e *workflow.Engine) int {
		cps, err := e.Checkpoints(context.Background(), pos[0], node)
		if err != nil {
			fprintf(stderr, "bulkhead checkpoints ls: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			return printJSON(stdout, cps)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSEQ\tBYTES\tCREATED\tDATA")
		for _, c := range cps {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", c.Node, c.Seq, len(c.Data), c.CreatedAt.Local().Format(time.DateTime+".000"), oneLine(string(c.Data), 60))
		}
		tw.Flush()
		return exitOK
	})
}
