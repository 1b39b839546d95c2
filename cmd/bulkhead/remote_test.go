package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const brokenFlow = `name: broken
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
  breaker: {failure_threshold: -1}
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, config: {broken: true}, needs: [a]}
`

const stepsFlow = `name: steps
nodes:
  long: {plugin: nodes, function: long, config: {steps: 30, step_ms: 1, every: 10}}
`

// The runs, dlq, checkpoints and plugins commands given --server (or
// $BULKHEAD_SERVER) print what a running service has; without it they
// refuse the data directory the service holds, saying why and what to do.
func TestRemote_CommandsTalkToService(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	// yearly's first due time is next New Year: it starts no run here.
	yearly := "name: yearly\nschedule: {cron: \"@yearly\"}\nnodes:\n  go: {sleep: 1s}\n"
	dir := svcDir(t, map[string]string{"chain": chainFlow, "broken": brokenFlow, "steps": stepsFlow, "yearly": yearly})
	s := startService(t, bin, dir)
	ctx := context.Background()
	t.Setenv("BULKHEAD_SERVER", "")
	t.Setenv("BULKHEAD_TOKEN_FILE", "")
	t.Setenv("BULKHEAD_TOKEN", s.token)
	srv := "--server=http://" + s.addr

	for id, flow := range map[string]string{"ok-1": "chain", "bad-1": "broken", "cp-1": "steps"} {
		if _, err := s.client.Submit(ctx, flow, json.RawMessage(`{"n":1}`), id); err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
	}
	waitUntil(t, 30*time.Second, "the runs to finish", func() bool {
		page, err := s.client.Runs(ctx, statestore.RunFilter{Limit: 100})
		if err != nil || len(page.Runs) != 3 {
			return false
		}
		for _, r := range page.Runs {
			if !r.Status.Finished() {
				return false
			}
		}
		return true
	})
	bad, err := s.client.Run(ctx, "bad-1")
	if err != nil || bad.Status != statestore.StatusFailed || bad.Attrs[workflow.AttrDeadLetter] == "" {
		t.Fatalf("bad-1: %+v %v", bad, err)
	}
	dl := bad.Attrs[workflow.AttrDeadLetter]

	run := func(args ...string) (int, string, string) {
		t.Helper()
		return bulkhead(t, "", args...)
	}
	mustOK := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(args...)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	matches := func(what, out string, res ...string) {
		t.Helper()
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s lacks %s:\n%s", what, re, out)
			}
		}
	}

	t.Run("runs", func(t *testing.T) {
		matches("runs ls", mustOK("runs", "ls", srv),
			`(?m)^ID\s+WORKFLOW\s+STATUS`, `(?m)^ok-1\s+chain\s+succeeded`, `(?m)^bad-1\s+broken\s+failed\s+.*node b failed`, `(?m)^cp-1\s+steps\s+succeeded`)
		if out := mustOK("runs", "ls", "--status", "failed", srv); !strings.Contains(out, "bad-1") || strings.Contains(out, "ok-1") {
			t.Errorf("runs ls --status failed:\n%s", out)
		}
		var page struct {
			Runs []statestore.Run `json:"runs"`
		}
		if err := json.Unmarshal([]byte(mustOK("runs", "ls", "--json", srv)), &page); err != nil {
			t.Fatal(err)
		}
		want, _ := s.client.Runs(ctx, statestore.RunFilter{Limit: 100, Newest: true})
		if len(page.Runs) != len(want.Runs) {
			t.Fatalf("runs ls --json: %d runs, the service has %d", len(page.Runs), len(want.Runs))
		}
		for i := range want.Runs {
			if page.Runs[i].ID != want.Runs[i].ID || page.Runs[i].Status != want.Runs[i].Status || !page.Runs[i].CreatedAt.Equal(want.Runs[i].CreatedAt) {
				t.Errorf("run %d: %+v, service: %+v", i, page.Runs[i], want.Runs[i])
			}
		}
		matches("runs show", mustOK("runs", "show", "ok-1", srv),
			`(?m)^run:\s+ok-1$`, `(?m)^status:\s+succeeded$`, `(?m)^a\s+succeeded\s+1\s`, `(?m)^b\s+succeeded\s+1\s`, `(?m)^output: \{.*"digest"`)
		matches("runs show failed", mustOK("runs", "show", "bad-1", srv), `(?m)^b\s+failed\s+2\s`, `(?m)^dead letter: `+dl+`$`)
		var info workflow.RunInfo
		if err := json.Unmarshal([]byte(mustOK("runs", "show", "ok-1", "--json", srv)), &info); err != nil || len(info.Nodes) != 2 || info.Nodes[1].Status != workflow.NodeSucceeded {
			t.Errorf("runs show --json: %+v %v", info, err)
		}
		if code, _, errOut := run("runs", "show", "no-such-run", srv); code != exitFailure || !strings.Contains(errOut, "no-such-run") {
			t.Errorf("runs show of a missing run: exit %d, %s", code, errOut)
		}
		if code, _, errOut := run("runs", "resume", "no-such-run", srv); code != exitUsage || !strings.Contains(errOut, "no-such-run") {
			t.Errorf("runs resume of a missing run: exit %d, %s", code, errOut)
		}
	})

	t.Run("schedules", func(t *testing.T) {
		matches("schedules ls", mustOK("schedules", "ls", srv),
			`(?m)^WORKFLOW\s+CRON\s+OVERLAP\s+CATCH UP\s+LAST\s+LAST RUN\s+NEXT$`,
			`(?m)^yearly\s+@yearly\s+skip\s+last\s+\d{4}-\d\d-\d\dT\S+Z\s+-\s+\d{4}-01-01T00:00:00Z \(in [0-9hms]+\)$`)
		var out struct {
			Schedules []workflow.ScheduleInfo `json:"schedules"`
		}
		if err := json.Unmarshal([]byte(mustOK("schedules", "ls", "-o", "json", srv)), &out); err != nil || len(out.Schedules) != 1 ||
			out.Schedules[0].Workflow != "yearly" || out.Schedules[0].Next.YearDay() != 1 {
			t.Errorf("schedules ls -o json: %+v %v", out, err)
		}
	})
	t.Run("checkpoints", func(t *testing.T) {
		want, err := s.client.Checkpoints(ctx, "cp-1", "", true)
		if err != nil || len(want) != 2 {
			t.Fatalf("the service has checkpoints %+v (%v), want 2", want, err)
		}
		matches("checkpoints ls", mustOK("checkpoints", "ls", "cp-1", srv),
			`(?m)^NODE\s+SEQ\s+BYTES`, `(?m)^long\s+1\s+\d+\s+.*"done":10`, `(?m)^long\s+2\s+\d+\s+.*"done":20`)
		var cps []checkpointJSON
		if err := json.Unmarshal([]byte(mustOK("checkpoints", "ls", "cp-1", "long", "--json", srv)), &cps); err != nil {
			t.Fatal(err)
		}
		if len(cps) != len(want) {
			t.Fatalf("checkpoints ls --json: %d, want %d", len(cps), len(want))
		}
		for i, c := range cps {
			if c.RunID != "cp-1" || c.Node != want[i].Node || c.Seq != want[i].Seq || string(c.Data) != string(want[i].Data) || c.CreatedAt.IsZero() {
				t.Errorf("checkpoint %d: %+v, service: %+v", i, c, want[i])
			}
		}
	})

	t.Run("plugins", func(t *testing.T) {
		sts, err := s.client.Plugins(ctx)
		if err != nil || len(sts) != 1 {
			t.Fatalf("service plugins %+v %v", sts, err)
		}
		matches("plugins ls", mustOK("plugins", "ls", srv), `(?m)^nodes\s+`+sts[0].Version[:12]+`\s+ok\s+closed\s`)
		var got []map[string]any
		if err := json.Unmarshal([]byte(mustOK("plugins", "ls", "--json", srv)), &got); err != nil || len(got) != 1 || got[0]["name"] != "nodes" || got[0]["calls"].(float64) < 5 {
			t.Errorf("plugins ls --json: %v %v", got, err)
		}
		matches("plugins reload", mustOK("plugins", "reload", "nodes", srv), `(?m)^nodes\s+`+sts[0].Version[:12]+`\s+ok`)
		if code, _, errOut := run("plugins", "reload", "absent", srv); code != exitUsage || !strings.Contains(errOut, "absent") {
			t.Errorf("plugins reload absent: exit %d, %s", code, errOut)
		}
	})

	t.Run("dlq", func(t *testing.T) {
		matches("dlq ls", mustOK("dlq", "ls", srv), `(?m)^`+dl+`\s+bad-1\s+b\s+\S+\s+2\s+.*this version is`)
		matches("dlq show", mustOK("dlq", "show", dl, srv), `(?m)^dead letter: `+dl+`$`, `(?m)^node:\s+b$`, `#1 .*broken`, `#2 .*broken`)
		// $BULKHEAD_SERVER does what --server does.
		t.Setenv("BULKHEAD_SERVER", "http://"+s.addr)
		var page struct {
			DeadLetters []statestore.DeadLetter `json:"dead_letters"`
		}
		if err := json.Unmarshal([]byte(mustOK("dlq", "ls", "--json")), &page); err != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].ID != dl {
			t.Errorf("dlq ls --json through BULKHEAD_SERVER: %+v %v", page, err)
		}
		t.Setenv("BULKHEAD_SERVER", "")
		// Replay waits for the run: the node is still broken, so it
		// fails again under a new dead letter.
		code, _, errOut := run("dlq", "replay", dl, srv)
		if code != exitFailure || !strings.Contains(errOut, "run bad-1 failed") || !strings.Contains(errOut, "dead letter: ") {
			t.Errorf("dlq replay: exit %d, %s", code, errOut)
		}
		matches("dlq purge", mustOK("dlq", "purge", srv), `^purged 1 dead letters\n$`)
		if left, err := s.client.DeadLetters(ctx, statestore.DeadLetterFilter{}); err != nil || len(left.DeadLetters) != 0 {
			t.Errorf("after purge the service has %+v (%v)", left.DeadLetters, err)
		}
		matches("dlq purge of none", mustOK("dlq", "purge", srv), `^purged 0 dead letters\n$`)
	})

	t.Run("errors", func(t *testing.T) {
		base := "http://" + s.addr
		t.Setenv("BULKHEAD_TOKEN", "wrong")
		code, _, errOut := run("runs", "ls", srv)
		if code != exitUsage || !strings.Contains(errOut, base) || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "BULKHEAD_TOKEN") {
			t.Errorf("wrong token: exit %d, %s", code, errOut)
		}
		t.Setenv("BULKHEAD_TOKEN", "")
		if code, _, errOut := run("dlq", "ls", srv); code != exitUsage || !strings.Contains(errOut, "no token was sent") {
			t.Errorf("no token: exit %d, %s", code, errOut)
		}
		t.Setenv("BULKHEAD_TOKEN", s.token)
		for _, args := range [][]string{{"runs", "ls"}, {"plugins", "ls"}, {"checkpoints", "ls", "cp-1"}, {"dlq", "purge"}} {
			code, _, errOut := run(append(args, "--server", "http://127.0.0.1:1")...)
			if code != exitUsage || !strings.Contains(errOut, "cannot reach the service at http://127.0.0.1:1") {
				t.Errorf("%v, unreachable: exit %d, %s", args, code, errOut)
			}
		}
		if code, _, errOut := run("runs", "ls", "--server", "127.0.0.1:7070"); code != exitUsage || !strings.Contains(errOut, "http://HOST:PORT") {
			t.Errorf("URL without scheme: exit %d, %s", code, errOut)
		}
		// Without --server the commands open the data directory, which the
		// service holds.
		data := filepath.Join(dir, "data")
		for _, args := range [][]string{{"runs", "ls"}, {"runs", "show", "ok-1"}, {"checkpoints", "ls", "cp-1"}, {"dlq", "ls"}, {"dlq", "replay", dl}} {
			code, _, errOut := run(append(args, "--data", data)...)
			if code != exitUsage || !strings.Contains(errOut, "locked") || !strings.Contains(errOut, "--server") || !strings.Contains(errOut, filepath.Join(data, "store")) {
				t.Errorf("%v on the service's data directory: exit %d, %s", args, code, errOut)
			}
		}
	})

	// run --server submits FLOW's workflow and follows the run to its end;
	// the exit status is the run's outcome. runs wait and runs show
	// --follow wait on the service too.
	t.Run("run --server", func(t *testing.T) {
		flows := filepath.Join(dir, "workflows")
		code, out, errOut := run("run", filepath.Join(flows, "chain.yaml"), "--input", `{"n":2}`, "--run-id", "follow-1", "--progress", "plain", srv)
		if code != exitOK || !strings.Contains(out, `"digest"`) {
			t.Fatalf("run --server: exit %d, stdout %q\n%s", code, out, errOut)
		}
		matches("run --server progress", errOut, `(?m)^bulkhead: node a succeeded \(attempt 1\)$`, `(?m)^bulkhead: node b succeeded \(attempt 1\)$`, `(?m)^bulkhead: run follow-1 succeeded$`)
		code, out, errOut = run("run", filepath.Join(flows, "broken.yaml"), "--input", "plain text", "--run-id", "follow-2", srv)
		if code != exitFailure || out != "" || !strings.Contains(errOut, "run follow-2 failed") || !strings.Contains(errOut, "dead letter: ") {
			t.Fatalf("run --server of a failing flow: exit %d, stdout %q\n%s", code, out, errOut)
		}
		if code, _, errOut := run("run", "no-such-flow", srv); code != exitUsage || !strings.Contains(errOut, `no workflow "no-such-flow"`) {
			t.Errorf("run --server of an unknown workflow: exit %d\n%s", code, errOut)
		}
		if code, out, _ := run("runs", "wait", "follow-1", srv); code != exitOK || !strings.Contains(out, `"digest"`) {
			t.Errorf("runs wait follow-1: exit %d, %q", code, out)
		}
		if code, _, errOut := run("runs", "wait", "follow-2", srv); code != exitFailure || !strings.Contains(errOut, "failed") {
			t.Errorf("runs wait follow-2: exit %d\n%s", code, errOut)
		}
		code, out, errOut = run("runs", "show", "follow-1", "--follow", srv)
		if code != exitOK || !strings.Contains(errOut, "run follow-1 succeeded") {
			t.Errorf("runs show --follow: exit %d\n%s%s", code, out, errOut)
		}
		matches("runs show --follow", out, `(?m)^status:\s+succeeded$`)
		var info workflow.RunInfo
		code, out, _ = run("runs", "show", "follow-2", "-f", "-o", "json", srv)
		if err := json.Unmarshal([]byte(out), &info); code != exitOK || err != nil || info.Status != statestore.StatusFailed {
			t.Errorf("runs show -f -o json: exit %d, %v\n%s", code, err, out)
		}
	})

	if exit, _ := s.stop(syscall.SIGTERM, 20*time.Second); exit != 0 {
		t.Fatalf("exit %d:\n%s", exit, s.logText())
	}
	// Once the service is gone the same directory opens directly.
	matches("runs ls on the data directory", mustOK("runs", "ls", "--data", filepath.Join(dir, "data")), `(?m)^ok-1\s+chain\s+succeeded`)

}
