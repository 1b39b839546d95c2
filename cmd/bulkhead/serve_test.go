package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// buildBinary builds bulkhead into dir, without the race detector: the
// service under test runs at its real speed.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bulkhead")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServe starts the real binary, built once, on free loopback ports.
func TestServe(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	t.Run("RunsOverHTTP", func(t *testing.T) { testRunsOverHTTP(t, bin) })
	t.Run("DrainOnSIGTERMAndResume", func(t *testing.T) { testDrainAndResume(t, bin) })
	t.Run("Load", func(t *testing.T) { testLoad(t, bin) })
	t.Run("NoTokenChecksHostAndOrigin", func(t *testing.T) { testNoToken(t, bin) })
	t.Run("Postgres", func(t *testing.T) { testServePostgres(t, bin) })
	t.Run("Hosts", func(t *testing.T) { testServeHosts(t, bin) })
	t.Run("Events", func(t *testing.T) { testServeEvents(t, bin) })
}

// service is a running `bulkhead serve`.
type service struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	token  string
	client *api.Client
	mu     sync.Mutex
	log    bytes.Buffer
	done   chan struct{}
	err    error
}

// svcDir lays out a service directory: plugins/nodes.wasm and the given
// workflows.
func svcDir(t *testing.T, workflows map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"plugins", "workflows"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins", "nodes.wasm"), hosttest.Fixture(t, "go/nodes/nodes.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, src := range workflows {
		if err := os.WriteFile(filepath.Join(dir, "workflows", name+".yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var listenRE = regexp.MustCompile(`"msg":"listening".*"addr":"([^"]+)"`)

// startService starts the binary in dir on a free loopback port and waits
// until it is ready.
func startService(t *testing.T, bin, dir string, extra ...string) *service {
	t.Helper()
	return startServiceToken(t, bin, dir, "test-token-"+strconv.Itoa(os.Getpid()), extra...)
}

// startServiceToken is startService with the given token ("" for none).
func startServiceToken(t *testing.T, bin, dir, token string, extra ...string) *service {
	t.Helper()
	s := &service{t: t, token: token, done: make(chan struct{})}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--plugins", filepath.Join(dir, "plugins"),
		"--workflows", filepath.Join(dir, "workflows"), "--data", filepath.Join(dir, "data"),
		"--log-format", "json", "--preset", "development"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "BULKHEAD_TOKEN="+s.token, "BULKHEAD_CACHE="+hosttest.CacheDir())
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("serve exited at start: %v\n%s", s.err, s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not listen in time:\n%s", s.logText())
	}
	s.client, err = api.NewClient("http://"+s.addr, s.token, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "ready", func() bool {
		code, _ := s.get("/readyz", "")
		return code == 200
	})
	return s
}

func (s *service) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// get returns the status and body of GET path with tok.
func (s *service) get(path, tok string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends sig and returns the exit code and how long the exit took.
func (s *service) stop(sig os.Signal, within time.Duration) (int, time.Duration) {
	s.t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(within):
		s.t.Fatalf("serve did not exit within %s:\n%s", within, s.logText())
	}
	return s.cmd.ProcessState.ExitCode(), time.Since(start)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of the sample whose line starts with name.
func metric(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

const chainFlow = `name: chain
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, needs: [a]}
`

func testRunsOverHTTP(t *testing.T, bin string) {
	dir := svcDir(t, map[string]string{"chain": chainFlow})
	s := startService(t, bin, dir, "--max-body", "4KiB")
	ctx := context.Background()

	// Auth and limits first.
	if code, body := s.get("/v1/runs", ""); code != 401 || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, _ := s.get("/v1/runs", "wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/workflows/chain/runs", bytes.NewReader(bytes.Repeat([]byte("x"), 8<<10)))
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"code":"body_too_large"`) {
		t.Errorf("oversized body: %d %s", resp.StatusCode, b)
	}

	_, before := s.get("/metrics", "")
	const n = 20
	for i := range n {
		sub, err := s.client.Submit(ctx, "chain", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), fmt.Sprintf("run-%02d", i))
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if sub.RunID != fmt.Sprintf("run-%02d", i) {
			t.Fatalf("run id %q", sub.RunID)
		}
	}
	waitUntil(t, 30*time.Second, "every run to finish", func() bool {
		page, err := s.client.Runs(ctx, statestore.RunFilter{Status: statestore.StatusSucceeded, Limit: 1000})
		return err == nil && len(page.Runs) == n
	})
	if info, err := s.client.Run(ctx, "run-07"); err != nil || info.Status != "succeeded" || len(info.Nodes) != 2 || info.Nodes[1].Status != "succeeded" {
		t.Errorf("run detail: %+v %v", info, err)
	}
	code, after := s.get("/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	moved := []struct {
		name string
		want float64
	}{
		{`bulkhead_runs_submitted_total`, n},
		{`bulkhead_runs_finished_total{status="succeeded"}`, n},
		{`bulkhead_call_duration_seconds_count{outcome="success",plugin="nodes"}`, 2 * n},
		{`bulkhead_policy_calls_total{outcome="success",policy="nodes"}`, 2 * n},
		{`bulkhead_plugin_loads_total{cause="added",plugin="nodes"}`, 1},
	}
	for _, m := range moved {
		if got := metric(t, after, m.name); got != m.want {
			t.Errorf("%s = %v after, want %v (before: %v)", m.name, got, m.want, metric(t, before, m.name))
		}
	}
	if metric(t, before, `bulkhead_runs_submitted_total`) != 0 {
		t.Errorf("submitted before any run: %v", metric(t, before, `bulkhead_runs_submitted_total`))
	}
	if exit, _ := s.stop(syscall.SIGTERM, 30*time.Second); exit != 0 {
		t.Errorf("exit %d:\n%s", exit, s.logText())
	}
}

const drainFlow = `name: drain
policy:
  retry: {max_attempts: 3, initial_delay: 1ms, jitter: none}
nodes:
  a: {plugin: nodes, function: work}
  b:
    plugin: nodes
    function: long
    config: {steps: 400, step_ms: 10, every: 10}
    needs: [a]
  c: {plugin: nodes, function: work, needs: [b]}
`

func testDrainAndResume(t *testing.T, bin string) {
	dir := svcDir(t, map[string]string{"drain": drainFlow})
	const grace = 500 * time.Millisecond
	s := startService(t, bin, dir, "--grace-period", grace.String())
	ctx := context.Background()
	if _, err := s.client.Submit(ctx, "drain", json.RawMessage(`"go"`), "slow-run"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "node b to run", func() bool {
		info, err := s.client.Run(ctx, "slow-run")
		if err != nil || len(info.Nodes) != 3 {
			return false
		}
		return info.Nodes[0].Status == "succeeded" && info.Nodes[1].Status == "running"
	})
	exit, took := s.stop(syscall.SIGTERM, 20*time.Second)
	if exit != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", exit, s.logText())
	}
	// b needs 4 s: exiting well before that means it was cancelled at
	// the grace period rather than waited for.
	if took > grace+3*time.Second {
		t.Errorf("exit took %s with a %s grace period", took, grace)
	}
	t.Logf("SIGTERM to exit: %s (grace %s)", took.Round(time.Millisecond), grace)

	s2 := startService(t, bin, dir, "--grace-period", grace.String())
	waitUntil(t, 30*time.Second, "the resumed run to finish", func() bool {
		r, err := s2.client.Run(ctx, "slow-run")
		return err == nil && r.Status == statestore.StatusSucceeded
	})
	if exit, _ := s2.stop(syscall.SIGTERM, 20*time.Second); exit != 0 {
		t.Fatalf("second exit %d", exit)
	}
	store, err := badgerstore.Open(server.StoreDir(filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	execs := func(node string) []string {
		b, err := store.StateGet(ctx, "nodes", "exec/slow-run/"+node)
		if errors.Is(err, statestore.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(b), ",")
	}
	if got := execs("a"); len(got) != 1 {
		t.Errorf("finished node a ran %v times, want once", got)
	}
	if got := execs("b"); len(got) != 2 {
		t.Errorf("interrupted node b ran %v, want twice (cut at the drain, then resumed)", got)
	}
	if got := execs("c"); len(got) != 1 {
		t.Errorf("node c ran %v, want once", got)
	}
	// b resumed from the checkpoint it saved before the drain.
	resumed, err := store.StateGet(ctx, "nodes", "resumed/slow-run/b")
	steps := strings.Split(string(resumed), ",")
	if err != nil || len(steps) != 2 || steps[1] == "0" {
		t.Errorf("b resumed from step %q (%v), want a saved checkpoint", resumed, err)
	}
	t.Logf("b started at steps %s of 400", resumed)
}

func TestServe_InvalidConfigFailsWithFileAndLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bulkhead.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:0\ndrain:\n  grace_period: 30s\n  grace: 1s\n"), 0o600)
	code, _, stderr := bulkhead(t, "", "serve", "--config", file)
	if code != exitUsage || !strings.Contains(stderr, file+`:4: unknown key "grace"`) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	os.WriteFile(file, []byte("listen: 0.0.0.0:7070\n"), 0o600)
	t.Setenv("BULKHEAD_TOKEN", "")
	code, _, stderr = bulkhead(t, "", "serve", "--config", file)
	if code != exitUsage || !strings.Contains(stderr, file+":1: listen: 0.0.0.0:7070") || !strings.Contains(stderr, "token") {
		t.Errorf("public address without token: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = bulkhead(t, "", "serve", "--listen", "127.0.0.1:99999")
	if code != exitUsage || !strings.Contains(stderr, "flag --listen: listen:") || !strings.Contains(stderr, "99999") {
		t.Errorf("serve with port 99999: exit %d, stderr:\n%s", code, stderr)
	}
	// config show shows the configuration and marks the problem.
	code, out, _ := bulkhead(t, "", "config", "show", "--listen", "127.0.0.1:99999")
	if code != exitFailure || !strings.Contains(out, "! flag --listen: listen:") || !strings.Contains(out, "99999") {
		t.Errorf("config show with port 99999: exit %d, stdout:\n%s", code, out)
	}
	t.Setenv("BULKHEAD_TOKEN", "short")
	code, _, stderr = bulkhead(t, "", "serve", "--config", file)
	if code != exitUsage || !strings.Contains(stderr, "env BULKHEAD_TOKEN: token:") {
		t.Errorf("public address with a short token: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestConfigShow_FlagOverEnvOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bulkhead.yaml")
	os.WriteFile(file, []byte("# the service\nlisten: 127.0.0.1:7001\nresilience:\n  preset: api\n  policy:\n    retry: {max_attempts: 9}\n"), 0o600)
	t.Setenv("BULKHEAD_LISTEN", "127.0.0.1:7002")
	t.Setenv("BULKHEAD_PRESET", "database")
	t.Setenv("RESILIENCE_HEALTH_CHECK_INTERVAL", "15000")
	code, out, stderr := bulkhead(t, "", "config", "show", "--config", file, "--listen", "127.0.0.1:7003")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^listen\s+127\.0\.0\.1:7003\s+flag --listen$`),
		regexp.MustCompile(`(?m)^resilience\.preset\s+database\s+env BULKHEAD_PRESET$`),
		regexp.MustCompile(`(?m)^resilience\.health_check_interval\s+15s\s+env RESILIENCE_HEALTH_CHECK_INTERVAL$`),
		regexp.MustCompile(`(?m)^resilience\.policy\.retry\.max_attempts\s+9\s+file ` + regexp.QuoteMeta(file) + `:6$`),
		regexp.MustCompile(`(?m)^resilience\.policy\.breaker\.failure_threshold\s+3\s+preset database$`),
		regexp.MustCompile(`(?m)^log_format\s+text\s+default$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("config show lacks %s:\n%s", want, out)
		}
	}
	code, out, _ = bulkhead(t, "", "config", "show", "--config", file, "--listen", "127.0.0.1:7003", "--json")
	var doc struct {
		Settings []struct {
			Key, Value string
			Source     struct{ Kind, Where string }
		}
	}
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || doc.Settings[0].Key != "listen" || doc.Settings[0].Source.Kind != "flag" {
		t.Errorf("config show --json: %d %s", code, out)
	}
}

// Without a token, the dashboard and the CLI keep working while a page on
// another origin, or one reached through a rebinding name, is refused.
func testNoToken(t *testing.T, bin string) {
	dir := svcDir(t, map[string]string{"chain": chainFlow})
	s := startServiceToken(t, bin, dir, "")
	ctx := context.Background()
	if _, err := s.client.Submit(ctx, "chain", json.RawMessage(`{"n":1}`), "nt-1"); err != nil {
		t.Fatalf("client submit: %v", err)
	}
	t.Setenv("BULKHEAD_SERVER", "")
	t.Setenv("BULKHEAD_TOKEN", "")
	t.Setenv("BULKHEAD_TOKEN_FILE", "")
	if code, out, errOut := bulkhead(t, "", "runs", "show", "nt-1", "--server=http://"+s.addr); code != exitOK || !strings.Contains(out, "nt-1") {
		t.Errorf("runs show: exit %d\n%s%s", code, out, errOut)
	}
	send := func(method, path, body string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send("GET", "/", "", map[string]string{"Sec-Fetch-Site": "none"}); code != 200 || !strings.Contains(body, "<title>bulkhead") {
		t.Errorf("dashboard: %d", code)
	}
	if code, body := send("GET", "/v1/runs/nt-1", "", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Errorf("dashboard read: %d %s", code, body)
	}
	evil := map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}
	if code, body := send("POST", "/v1/workflows/chain/runs", `{"run_id":"csrf"}`, evil); code != 403 || !strings.Contains(body, `"cross_origin"`) {
		t.Errorf("cross-origin submit: %d %s", code, body)
	}
	if code, body := send("POST", "/v1/plugins/nodes/call?function=work", "{}", evil); code != 403 {
		t.Errorf("cross-origin call: %d %s", code, body)
	}
	if code, body := send("GET", "/v1/runs", "", map[string]string{"Host": "rebind.evil.example:7070"}); code != 403 || !strings.Contains(body, `"host_not_allowed"`) {
		t.Errorf("rebinding Host: %d %s", code, body)
	}
	if run, err := s.client.Run(ctx, "csrf"); err == nil {
		t.Errorf("the cross-origin submit made a run: %+v", run)
	}
}
