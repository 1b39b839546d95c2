// Command demo is `make demo`: it runs the demo workflow with bulkhead,
// kills bulkhead with SIGKILL in the middle of the run, starts it again
// with the same run ID and shows that the run finishes from where it
// stopped: finished nodes are not run again, the long node resumes from
// its last checkpoint, and attempt numbers keep counting.
//
//	go run ./examples/demo -bin bin/bulkhead -plugins DIR -data DIR
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/bulkhead", "the bulkhead binary")
	flow := flag.String("flow", "examples/demo/flow.yaml", "the workflow")
	plugins := flag.String("plugins", ".bulkhead-demo/plugins", "the plugins directory (with nodes.wasm)")
	data := flag.String("data", ".bulkhead-demo/data", "the data directory (emptied first)")
	killAt := flag.Int("kill-at", 3, "kill bulkhead when the long node saved this checkpoint")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	if err := demo(ctx, *bin, *flow, *plugins, *data, *killAt); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, bin, flow, plugins, data string, killAt int) error {
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	runID := fmt.Sprintf("demo-%d", time.Now().Unix())
	args := []string{"run", flow, "--run-id", runID, "--input", "hello, bulkhead", "--plugins", plugins, "--data", data, "--progress", "plain"}
	fmt.Printf("=== 1. bulkhead %s\n", strings.Join(args, " "))
	killLine := fmt.Sprintf("node long saved checkpoint #%d", killAt)
	first, _, _, err := runBulkhead(ctx, bin, args, killLine)
	if err != nil {
		return err
	}
	fmt.Printf("\n=== 2. killed bulkhead with SIGKILL right after %q; nothing was shut down cleanly\n", killLine)
	fmt.Printf("\n=== 3. started again with the same run ID\n")
	second, out, code, err := runBulkhead(ctx, bin, args, "")
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("the resumed run exited with status %d", code)
	}
	fmt.Printf("\n=== 4. run output (stdout): %s\n", out)

	fmt.Printf("\n=== what happened\n")
	finished1 := matches(first, `node (\S+) finished \(attempt (\d+)\)`)
	skipped := matches(second, `node (\S+) finished before \(attempt (\d+)\): not run again`)
	resumed := matches(second, `node (\S+) resumed from checkpoint #(\d+)`)
	started2 := matches(second, `node (\S+) started \(attempt (\d+)\)`)
	fmt.Printf("before the kill, finished and journaled: %s\n", list(finished1))
	fmt.Printf("after the restart, not run again:        %s\n", list(skipped))
	fmt.Printf("after the restart, run (attempt number): %s\n", list(started2))
	for _, m := range resumed {
		fmt.Printf("node %s resumed from checkpoint #%s instead of starting over\n", m[0], m[1])
		if note := attemptNote(m[0], first, second); note != "" {
			fmt.Println(note)
		}
	}
	for _, m := range append(finished1, matches(second, `node (\S+) finished \(attempt (\d+)\)`)...) {
		if m[0] == "flaky" {
			fmt.Printf("node flaky failed its first attempts and succeeded on attempt %s (retried with backoff)\n", m[1])
		}
	}
	for _, m := range skipped {
		for _, s := range started2 {
			if s[0] == m[0] {
				return fmt.Errorf("node %s finished before the kill but ran again", m[0])
			}
		}
	}
	if len(skipped) == 0 || len(resumed) == 0 {
		return fmt.Errorf("the restart did not resume the run (skipped %v, resumed %v)", skipped, resumed)
	}
	fmt.Printf("\n=== bulkhead runs show %s\n", runID)
	show := exec.CommandContext(ctx, bin, "runs", "show", runID, "--data", data)
	show.Stdout, show.Stderr = os.Stdout, os.Stderr
	if err := show.Run(); err != nil {
		return err
	}
	fmt.Printf("\n=== the dashboard: run this, then open http://127.0.0.1:7070/#/runs/%s (the run page; / is the overview)\n", runID)
	fmt.Printf("  %s serve --plugins %s --workflows %s --data %s\n", bin, plugins, filepath.Dir(flow), data)
	return nil
}

// runBulkhead runs bin, echoing its stderr, and kills it with SIGKILL
// when a line contains killOn ("" never). It returns the stderr lines,
// stdout and the exit status.
func runBulkhead(ctx context.Context, bin string, args []string, killOn string) ([]string, string, int, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out strings.Builder
	cmd.Stdout = &out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", 0, err
	}
	var lines []string
	killed := false
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		fmt.Println("  | " + line)
		if killOn != "" && !killed && strings.Contains(line, killOn) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	_, _ = io.Copy(io.Discard, pipe)
	err = cmd.Wait()
	if killOn != "" && !killed {
		return lines, out.String(), 0, fmt.Errorf("bulkhead finished before %q appeared", killOn)
	}
	if ctx.Err() != nil {
		return lines, out.String(), 0, fmt.Errorf("the demo took too long: %w", ctx.Err())
	}
	code := 0
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if err != nil && !killed && code == 0 {
		return lines, out.String(), 0, err
	}
	return lines, out.String(), code, nil
}

// attemptNote explains node's first attempt number after the restart:
// before each execution the engine reserves a block of attempt numbers
// (the policy's max_attempts), so an execution cut off by the kill leaves
// its unused numbers behind and the next one starts above the block.
func attemptNote(node string, before, after []string) string {
	var ran []string
	for _, s := range matches(before, `node (\S+) started \(attempt (\d+)\)`) {
		if s[0] == node {
			ran = append(ran, s[1])
		}
	}
	next := 0
	for _, s := range matches(after, `node (\S+) started \(attempt (\d+)\)`) {
		if s[0] == node {
			next, _ = strconv.Atoi(s[1])
			break
		}
	}
	if next <= 1 {
		return ""
	}
	reserved := "attempt number 1 was"
	if next > 2 {
		reserved = fmt.Sprintf("attempt numbers 1–%d were", next-1)
	}
	ranText := "none of them ran"
	switch len(ran) {
	case 0:
	case 1:
		ranText = "attempt " + ran[0] + " ran"
	default:
		ranText = "attempts " + strings.Join(ran, ", ") + " ran"
	}
	return fmt.Sprintf("node %s: attempt %d is its first after the restart; %s reserved before the kill (%s): each execution reserves the policy's max_attempts, so numbers never repeat across crashes",
		node, next, reserved, ranText)
}

func matches(lines []string, pattern string) [][]string {
	re := regexp.MustCompile(pattern)
	var out [][]string
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m[1:])
		}
	}
	return out
}

func list(ms [][]string) string {
	if len(ms) == 0 {
		return "(none)"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m[0] + " (" + m[1] + ")"
	}
	return strings.Join(parts, ", ")
}
