package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

const pgPassword = "s3cret-Pa55word"

// closedURL returns a postgres:// URL with a password whose port nobody
// listens on.
func closedURL(t *testing.T) (url, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	return fmt.Sprintf("postgres://bulkhead:%s@%s/bulkhead?sslmode=disable", pgPassword, addr), addr
}

// A workflow run with --store is journaled in PostgreSQL: runs show and a
// second run with its ID, from other processes' point of view (no data
// directory store), see it; migrate applies the schema once.
func TestRun_Postgres(t *testing.T) {
	url := pgtest.URL(t)
	code, out, errOut := bulkhead(t, "", "migrate", "--store", url)
	if code != exitOK || !regexp.MustCompile(`^applied migrations: 1(, \d+)*\n$`).MatchString(out) {
		t.Fatalf("migrate on a fresh database: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if code, out, errOut := bulkhead(t, "", "migrate", "--store", url); code != exitOK || out != "schema is current\n" {
		t.Fatalf("migrate again: exit %d, stdout %q\n%s", code, out, errOut)
	}

	tmp := t.TempDir()
	plugins, data := filepath.Join(tmp, "plugins"), filepath.Join(tmp, "data")
	os.MkdirAll(plugins, 0o755)
	if err := os.WriteFile(filepath.Join(plugins, "nodes.wasm"), hosttest.Fixture(t, "go/nodes/nodes.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	flow := filepath.Join(tmp, "chain.yaml")
	os.WriteFile(flow, []byte(chainFlow), 0o644)

	code, out, errOut = bulkhead(t, "", "run", flow, "--input", "x", "--store", url, "--data", data, "--plugins", plugins, "--run-id", "pg1")
	if code != exitOK || out == "" {
		t.Fatalf("run: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "store")); !os.IsNotExist(err) {
		t.Errorf("run with --store opened the data directory's store: %v", err)
	}
	other := filepath.Join(tmp, "other")
	if code, show, errOut := bulkhead(t, "", "runs", "show", "pg1", "--store", url, "--data", other); code != exitOK ||
		!regexp.MustCompile(`status:\s+succeeded`).MatchString(show) || !regexp.MustCompile(`b\s+succeeded\s+1`).MatchString(show) {
		t.Fatalf("runs show: exit %d\n%s%s", code, show, errOut)
	}
	t.Setenv("BULKHEAD_STORE", url)
	if code, ls, errOut := bulkhead(t, "", "runs", "ls", "--data", other); code != exitOK || !regexp.MustCompile(`pg1\s+chain\s+succeeded`).MatchString(ls) {
		t.Fatalf("runs ls with BULKHEAD_STORE: exit %d\n%s%s", code, ls, errOut)
	}
	// The finished run's ID again prints its output without running it.
	if code, again, errOut := bulkhead(t, "", "run", flow, "--data", other, "--plugins", plugins, "--run-id", "pg1"); code != exitOK || again != out {
		t.Fatalf("rerun: exit %d, stdout %q, want %q\n%s", code, again, out, errOut)
	}
	for _, args := range [][]string{{"dlq", "ls"}, {"checkpoints", "ls", "pg1"}} {
		if code, _, errOut := bulkhead(t, "", append(args, "--data", other)...); code != exitOK {
			t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
	}
	if code, _, errOut := bulkhead(t, "", "store", "check", "--data", other); code != exitUsage || !strings.Contains(errOut, "embedded store") {
		t.Errorf("store check with a URL: exit %d\n%s", code, errOut)
	}
}

// config show replaces the store URL's password, whether it comes from
// the file, the environment or a flag.
func TestConfigShow_StorePasswordHidden(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bulkhead.yaml")
	url := "postgres://bulkhead:" + pgPassword + "@db.example:5432/bulkhead?sslmode=require"
	os.WriteFile(file, []byte("store:\n  url: "+url+"\n"), 0o600)
	tests := []struct {
		name       string
		env        string
		args       []string
		wantSource string
	}{
		{name: "file", args: []string{"--config", file}, wantSource: "file " + file + ":2"},
		{name: "env", env: url, wantSource: "env BULKHEAD_STORE"},
		{name: "flag", args: []string{"--store", url}, wantSource: "flag --store"},
		{name: "password parameter", args: []string{"--store", "postgresql://db.example/bulkhead?password=" + pgPassword}, wantSource: "flag --store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BULKHEAD_STORE", tt.env)
			for _, asJSON := range []bool{false, true} {
				args := append([]string{"config", "show"}, tt.args...)
				if asJSON {
					args = append(args, "--json")
				}
				code, out, errOut := bulkhead(t, "", args...)
				if code != exitOK || strings.Contains(out+errOut, pgPassword) || !strings.Contains(out, "xxxxx") || !asJSON && !strings.Contains(out, tt.wantSource) {
					t.Errorf("%v: exit %d\n%.2000s%s", args, code, out, errOut)
				}
			}
		})
	}
}

// Opening an unreachable database fails with an error naming the server
// and never the password, in every command.
func TestStore_UnreachablePasswordHidden(t *testing.T) {
	url, addr := closedURL(t)
	dir := svcDir(t, nil)
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "runs ls", args: []string{"runs", "ls", "--store", url}, wantCode: exitUsage},
		{name: "run", args: []string{"run", filepath.Join(dir, "none.yaml"), "--store", url, "--plugins", filepath.Join(dir, "plugins")}, wantCode: exitUsage},
		{name: "migrate", args: []string{"migrate", "--store", url}, wantCode: exitFailure},
		{name: "serve", args: []string{"serve", "--listen", "127.0.0.1:0", "--plugins", filepath.Join(dir, "plugins"),
			"--workflows", filepath.Join(dir, "workflows"), "--data", filepath.Join(dir, "data"), "--store", url}, wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := bulkhead(t, "", tt.args...)
			if code != tt.wantCode || strings.Contains(out+errOut, pgPassword) || !strings.Contains(errOut, addr) {
				t.Errorf("exit %d, want %d; stdout %q, stderr:\n%s", code, tt.wantCode, out, errOut)
			}
		})
	}
}

// A store URL of another scheme is a usage error, naming where it came
// from and never repeating the URL.
func TestStore_BadScheme(t *testing.T) {
	const bad = "mysql://bulkhead:" + pgPassword + "@db.example/bulkhead"
	file := filepath.Join(t.TempDir(), "bulkhead.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:0\nstore:\n  url: "+bad+"\n"), 0o600)
	tests := []struct {
		name    string
		args    []string
		wantHas string
	}{
		{name: "serve flag", args: []string{"serve", "--store", bad}, wantHas: `flag --store: store.url: unknown scheme "mysql"`},
		{name: "runs ls", args: []string{"runs", "ls", "--store", bad}, wantHas: `unknown scheme "mysql"`},
		{name: "run", args: []string{"run", file, "--store", bad}, wantHas: `unknown scheme "mysql"`},
		{name: "migrate", args: []string{"migrate", "--store", bad}, wantHas: `unknown scheme "mysql"`},
		{name: "no scheme", args: []string{"runs", "ls", "--store", "host=db password=" + pgPassword}, wantHas: "want a postgres://"},
		{name: "migrate without URL", args: []string{"migrate"}, wantHas: "no store URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BULKHEAD_STORE", "")
			code, out, errOut := bulkhead(t, "", tt.args...)
			if code != exitUsage || !strings.Contains(errOut, tt.wantHas) || strings.Contains(out+errOut, pgPassword) {
				t.Errorf("exit %d, want %d; stdout %q, stderr:\n%s", code, exitUsage, out, errOut)
			}
		})
	}
	// config show marks the problem on stdout, still without the password.
	t.Run("config file", func(t *testing.T) {
		t.Setenv("BULKHEAD_STORE", "")
		code, out, errOut := bulkhead(t, "", "config", "show", "--config", file)
		if code != exitFailure || !strings.Contains(out, file+`:3: store.url: unknown scheme "mysql"`) || strings.Contains(out+errOut, pgPassword) {
			t.Errorf("exit %d, want %d; stdout %q, stderr:\n%s", code, exitFailure, out, errOut)
		}
	})
}

// tcpProxy forwards connections to a PostgreSQL server until cut.
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		p.mu.Lock()
		if err != nil || p.cut {
			p.mu.Unlock()
			c.Close()
			if u != nil {
				u.Close()
			}
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
	}
}

// sever closes every connection and refuses new ones.
func (p *tcpProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.sever()
	p.wg.Wait()
}

// serve on PostgreSQL runs a workflow, journals it where `runs show` in
// another process finds it, and /readyz turns 503 when the database
// becomes unreachable.
func testServePostgres(t *testing.T, bin string) {
	url := pgtest.URL(t)
	host := regexp.MustCompile(`@([^/]+)/`).FindStringSubmatch(url)[1]
	proxy := newTCPProxy(t, host)
	viaProxy := strings.Replace(url, "@"+host+"/", "@"+proxy.l.Addr().String()+"/", 1)
	dir := svcDir(t, map[string]string{"chain": chainFlow})
	s := startService(t, bin, dir, "--store", viaProxy)
	ctx := context.Background()
	if _, err := s.client.Submit(ctx, "chain", json.RawMessage(`{"i":1}`), "pg-serve"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the run to finish", func() bool {
		page, err := s.client.Runs(ctx, statestore.RunFilter{Status: statestore.StatusSucceeded})
		return err == nil && len(page.Runs) == 1
	})
	if code, show, errOut := bulkhead(t, "", "runs", "show", "pg-serve", "--store", url, "--data", filepath.Join(dir, "other")); code != exitOK ||
		!regexp.MustCompile(`status:\s+succeeded`).MatchString(show) {
		t.Fatalf("runs show beside the service: exit %d\n%s%s", code, show, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "store")); !os.IsNotExist(err) {
		t.Errorf("serve with --store opened the data directory's store: %v", err)
	}
	proxy.sever()
	waitUntil(t, 30*time.Second, "/readyz to say 503", func() bool {
		code, _ := s.get("/readyz", "")
		return code == 503
	})
	if code, _ := s.get("/livez", ""); code == 0 {
		t.Errorf("the service stopped answering")
	}
	s.stop(syscall.SIGTERM, 60*time.Second)
	if strings.Contains(s.logText(), "Pa55") {
		t.Errorf("the log shows a password")
	}
}
