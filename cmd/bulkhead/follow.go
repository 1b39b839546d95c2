package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// follow polls run id on the service until it finishes, printing on
// progress (nil: nothing) a line for each change of a node (started, a new
// attempt, finished, failed) and of the run. It returns the finished run,
// or ok=false with the exit status after reporting an error. An interrupt
// stops the following, not the run.
func (r *remote) follow(ctx context.Context, id string, progress io.Writer, stderr io.Writer) (info workflow.RunInfo, code int, ok bool) {
	seen := map[string]string{}
	lastRun := ""
	delay := 20 * time.Millisecond
	for {
		var err error
		if info, err = r.c.Run(ctx, id); err != nil {
			if ctx.Err() != nil {
				fprintf(stderr, "bulkhead %s: interrupted; run %s goes on in the service: bulkhead runs show %s --follow --server %s\n", r.cmd, id, id, r.url)
				return info, exitFailure, false
			}
			return info, r.fail(err, exitFailure, stderr), false
		}
		if progress != nil {
			if s := string(info.Status); s != lastRun {
				lastRun = s
				fprintf(progress, "bulkhead: run %s %s\n", id, s)
			}
			for _, n := range info.Nodes {
				state := followState(n)
				if seen[n.Name] != state {
					if _, had := seen[n.Name]; had || n.Attempts > 0 {
						fprintf(progress, "bulkhead: node %s %s\n", n.Name, state)
					}
					seen[n.Name] = state
				}
			}
		}
		if info.Status.Finished() {
			return info, exitOK, true
		}
		select {
		case <-ctx.Done():
			fprintf(stderr, "bulkhead %s: interrupted; run %s goes on in the service: bulkhead runs show %s --follow --server %s\n", r.cmd, id, id, r.url)
			return info, exitFailure, false
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// runRemote is `run FLOW --server URL`: it submits a run of FLOW's
// workflow (FLOW is a workflow file, whose name: the service must have
// loaded from its workflows directory, or that name itself) and follows
// it to the end; the exit status is the run's outcome.
func runRemote(ctx context.Context, rm *remote, flow string, in []byte, runID string, quiet bool, stdout, stderr io.Writer) int {
	name := flow
	if b, err := os.ReadFile(flow); err == nil {
		var w struct {
			Name string `yaml:"name"`
		}
		if err := yaml.Unmarshal(b, &w); err != nil || w.Name == "" {
			fprintf(stderr, "bulkhead run: %s has no workflow name (name: …)\n", flow)
			return exitUsage
		}
		name = w.Name
	}
	// The API takes the input as JSON: JSON text goes as it is, anything
	// else as a JSON string.
	input := json.RawMessage(in)
	if len(in) > 0 && !json.Valid(in) {
		input, _ = json.Marshal(string(in))
	}
	if len(in) == 0 {
		input = nil
	}
	sub, err := rm.c.Submit(ctx, name, input, runID)
	if err != nil {
		if notFound(err) {
			fprintf(stderr, "bulkhead run: the service at %s has no workflow %q: put %s in its workflows directory (it loads them at start)\n", rm.url, name, flow)
			return exitUsage
		}
		return rm.fail(err, exitUsage, stderr)
	}
	var progress io.Writer = stderr
	if quiet {
		progress = nil
	}
	info, code, ok := rm.follow(ctx, sub.RunID, progress, stderr)
	if !ok {
		return code
	}
	return printFinished("run", info.Run, stdout, stderr)
}
