// Command cluster is `make demo-cluster`: three `bulkhead serve` hosts
// share one PostgreSQL database; a run is submitted to one of them, the
// host running its long node is killed with SIGKILL, and another host
// takes the node over from its last checkpoint and finishes the run.
//
// It starts a throwaway PostgreSQL from the server binaries installed on
// the machine (Debian's postgresql package) and removes it at the end.
//
//	go run ./examples/cluster -bin bin/bulkhead -plugins DIR
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

const flow = `name: cluster
nodes:
  fetch: {plugin: nodes, function: work}
  crunch:
    plugin: nodes
    function: long
    config: {steps: 40, step_ms: 100, every: 5}
    needs: [fetch]
  report: {plugin: nodes, function: work, needs: [crunch]}
`

const (
	token = "demo-cluster-token"
	lease = 3 * time.Second
)

func main() {
	bin := flag.String("bin", "bin/bulkhead", "the bulkhead binary")
	plugins := flag.String("plugins", ".bulkhead-demo/plugins", "the plugins directory (with nodes.wasm)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := demo(ctx, *bin, *plugins); err != nil {
		fmt.Fprintln(os.Stderr, "demo-cluster:", err)
		os.Exit(1)
	}
}

// host is one running `bulkhead serve`.
type host struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	client *api.Client
	done   chan struct{}
}

var listenRE = regexp.MustCompile(`"msg":"listening".*"addr":"([^"]+)"`)

func startHost(ctx context.Context, bin, name, dir, plugins, url string) (*host, error) {
	h := &host{name: name, done: make(chan struct{})}
	h.cmd = exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--store", url, "--host-id", name,
		"--lease", lease.String(), "--data", filepath.Join(dir, name), "--plugins", plugins,
		"--workflows", filepath.Join(dir, "workflows"), "--log-format", "json")
	h.cmd.Env = append(os.Environ(), "BULKHEAD_TOKEN="+token)
	stderr, err := h.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = h.cmd.Wait()
		close(h.done)
	}()
	select {
	case h.addr = <-addr:
	case <-h.done:
		return nil, fmt.Errorf("%s exited at start", name)
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("%s did not start in a minute", name)
	}
	if h.client, err = api.NewClient("http://"+h.addr, token, &http.Client{Timeout: 10 * time.Second}); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + h.addr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready in a minute", name)
		}
	}
}

func demo(ctx context.Context, bin, plugins string) error {
	fmt.Println("=== 1. a throwaway PostgreSQL")
	pg, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrMissing) {
		return fmt.Errorf("%w: install PostgreSQL (Debian: apt-get install postgresql)", err)
	}
	if err != nil {
		return err
	}
	defer pg.Stop()
	url, err := pg.CreateDB("bulkhead")
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "migrate", "--store", url).CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v: %s", err, out)
	}
	dir, err := os.MkdirTemp("", "bulkhead-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "workflows"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "workflows", "cluster.yaml"), []byte(flow), 0o644); err != nil {
		return err
	}

	fmt.Printf("=== 2. three hosts on one database (lease %s)\n", lease)
	var hosts []*host
	defer func() {
		for _, h := range hosts {
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
			<-h.done
		}
	}()
	for i := range 3 {
		h, err := startHost(ctx, bin, fmt.Sprintf("host-%d", i+1), dir, plugins, url)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
		fmt.Printf("    %s listening on %s\n", h.name, h.addr)
	}

	runID := fmt.Sprintf("cluster-%d", time.Now().Unix())
	if _, err := hosts[0].client.Submit(ctx, "cluster", json.RawMessage(`"hello, cluster"`), runID); err != nil {
		return err
	}
	fmt.Printf("=== 3. run %s submitted to %s\n", runID, hosts[0].name)

	// Find the host running the long node once it saved a checkpoint.
	var victim *host
	for victim == nil {
		if ctx.Err() != nil {
			return errors.New("the long node never started")
		}
		time.Sleep(200 * time.Millisecond)
		cps, err := hosts[0].client.Checkpoints(ctx, runID, "crunch", false)
		if err != nil || len(cps) < 2 {
			continue
		}
		for _, h := range hosts {
			info, err := h.client.Run(ctx, runID)
			if err == nil && nodeOf(info, "crunch").Status == workflow.NodeRunning {
				victim = h
			}
		}
	}
	cps, _ := hosts[0].client.Checkpoints(ctx, runID, "crunch", false)
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-victim.done
	fmt.Printf("=== 4. %s ran node crunch and saved checkpoint #%d: killed it with SIGKILL\n", victim.name, len(cps))

	var other *host
	for _, h := range hosts {
		if h != victim {
			other = h
			break
		}
	}
	var info workflow.RunInfo
	for {
		if ctx.Err() != nil {
			return errors.New("the run did not finish after the kill")
		}
		time.Sleep(200 * time.Millisecond)
		if info, err = other.client.Run(ctx, runID); err == nil && info.Status.Finished() {
			break
		}
	}
	crunch := nodeOf(info, "crunch")
	fmt.Printf("=== 5. %s took node crunch over once its lease (%s) ended, finished it %s after the kill, and the run %s\n",
		crunch.Host, lease, crunch.FinishedAt.Sub(killed).Round(100*time.Millisecond), info.Status)
	fmt.Println()
	fmt.Printf("    %-8s %-10s %-8s %s\n", "node", "status", "attempt", "host")
	for _, n := range info.Nodes {
		fmt.Printf("    %-8s %-10s %-8d %s\n", n.Name, n.Status, n.Attempts, n.Host)
	}
	fmt.Printf("\n    output: %s\n", strings.TrimSpace(string(info.Output)))
	hosts = slicesDelete(hosts, victim)
	if info.Status != "succeeded" || crunch.Host == victim.name {
		return fmt.Errorf("run %s, node crunch journaled by %s: want succeeded on another host", info.Status, crunch.Host)
	}
	return nil
}

func nodeOf(info workflow.RunInfo, name string) workflow.NodeInfo {
	for _, n := range info.Nodes {
		if n.Name == name {
			return n
		}
	}
	return workflow.NodeInfo{}
}

func slicesDelete(hs []*host, h *host) []*host {
	var out []*host
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}
