package pgstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// proxy forwards TCP connections to a PostgreSQL server until it is killed
// (connections reset, port closed) or frozen (connections kept, nothing
// forwarded).
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen bool
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		if n > 0 && !frozen {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			dst.Close()
			return
		}
	}
}

// url rewrites u to go through the proxy.
func (p *proxy) url(t *testing.T, u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = p.l.Addr().String()
	return pu.String()
}

func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

func (p *proxy) kill() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func pgAddr(t *testing.T, u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Host
}

// TestOpen_ClosedPort: Open against a port nobody listens on fails at
// once, names host:port and never the password.
func TestOpen_ClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const password = "s3cret-Pa55word"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = pgstore.Open(ctx, fmt.Sprintf("postgres://bulkhead:%s@%s/bulkhead?sslmode=disable", password, addr))
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if !errors.Is(err, statestore.ErrUnavailable) || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), password) {
		t.Fatalf("Open of a closed port: %v; want ErrUnavailable naming %s and not the password", err, addr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open of a closed port took %v", d)
	}
	if _, err := pgstore.Migrate(ctx, fmt.Sprintf("postgres://bulkhead:%s@%s/bulkhead", password, addr)); err == nil ||
		strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Migrate of a closed port: %v", err)
	}
	_, err = pgstore.Open(ctx, "postgres://bulkhead:"+password+"@[bad")
	if !errors.Is(err, statestore.ErrInvalid) || strings.Contains(err.Error(), password) {
		t.Fatalf("Open of a malformed URL: %v", err)
	}
}

// TestStore_DatabaseGone: once the database is unreachable every call
// returns ErrUnavailable promptly; once it is frozen (connections open,
// nothing answered) calls end with their context.
func TestStore_DatabaseGone(t *testing.T) {
	u := pgtest.URL(t)
	p := newProxy(t, pgAddr(t, u))
	s := open(t, p.url(t, u), pgstore.WithCloseTimeout(2*time.Second))
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	p.kill()
	calls := map[string]func(ctx context.Context) error{
		"GetRun": func(ctx context.Context) error { _, err := s.GetRun(ctx, "r1"); return err },
		"CompleteNode": func(ctx context.Context) error {
			return s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a"})
		},
		"CreateRun": func(ctx context.Context) error {
			_, _, err := s.CreateRun(ctx, statestore.Run{ID: "r2", Workflow: "wf"})
			return err
		},
		"StateSet": func(ctx context.Context) error { return s.StateSet(ctx, "p", "k", []byte("v")) },
		"SubmitRun": func(ctx context.Context) error {
			_, _, err := s.SubmitRun(ctx, statestore.Run{ID: "r3", Workflow: "wf"}, []statestore.ReadyNode{{Node: "a", Block: 1}})
			return err
		},
		"ClaimTasks": func(ctx context.Context) error { _, err := s.ClaimTasks(ctx, "h1", 1, time.Minute); return err },
		"CompleteTask": func(ctx context.Context) error {
			_, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: statestore.Fence{RunID: "r1", Node: "a", Owner: "h1", Token: 1},
				Result: statestore.NodeResult{RunID: "r1", Node: "a"}})
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := call(ctx)
		cancel()
		if !errors.Is(err, statestore.ErrUnavailable) || time.Since(start) > 5*time.Second {
			t.Errorf("%s with the database gone: %v after %v; want ErrUnavailable at once", name, err, time.Since(start))
		}
		var pe interface{ SQLState() string }
		if errors.As(err, &pe) {
			t.Errorf("%s: a pgx error escaped: %v", name, err)
		}
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close with the database gone: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close with the database gone took %v", d)
	}
}

func TestStore_DatabaseFrozen(t *testing.T) {
	u := pgtest.URL(t)
	p := newProxy(t, pgAddr(t, u))
	s := open(t, p.url(t, u), pgstore.WithCloseTimeout(2*time.Second))
	if _, _, err := s.CreateRun(context.Background(), statestore.Run{ID: "r1", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	p.freeze()
	for name, call := range map[string]func(ctx context.Context) error{
		"GetRun": func(ctx context.Context) error { _, err := s.GetRun(ctx, "r1"); return err },
		"CompleteNode": func(ctx context.Context) error {
			return s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a"})
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
			t.Errorf("%s with the database frozen: %v after %v; want DeadlineExceeded after 300ms", name, err, time.Since(start))
		}
	}
	start := time.Now()
	_ = s.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close with the database frozen took %v", d)
	}
}

// TestMigrate: migrations apply once; a database whose recorded migration
// differs, or that is newer than the binary, is refused unchanged; a store
// opened WithoutMigrate needs a migrated database.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	_, err := pgstore.Open(ctx, u, pgstore.WithoutMigrate())
	if !errors.Is(err, pgstore.ErrSchema) {
		t.Fatalf("Open WithoutMigrate of an empty database: %v, want ErrSchema", err)
	}
	all := allVersions(t)
	applied, err := pgstore.Migrate(ctx, u)
	if err != nil || fmt.Sprint(applied) != fmt.Sprint(all) {
		t.Fatalf("first Migrate = %v, %v; want %v", applied, err, all)
	}
	applied, err = pgstore.Migrate(ctx, u)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
	}
	s := open(t, u, pgstore.WithoutMigrate())
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	conn := connect(t, u)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
	for _, o := range [][]pgstore.Option{nil, {pgstore.WithoutMigrate()}} {
		_, err = pgstore.Open(ctx, u, o...)
		if !errors.Is(err, pgstore.ErrSchema) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("Open of a database with another migration 1: %v", err)
		}
	}
	if _, err := pgstore.Migrate(ctx, u); !errors.Is(err, pgstore.ErrSchema) {
		t.Fatalf("Migrate of a database with another migration 1: %v", err)
	}
	b, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	exec(fmt.Sprintf("UPDATE schema_migrations SET checksum = '%x' WHERE version = 1", sum))
	exec(fmt.Sprintf("INSERT INTO schema_migrations (version, checksum) VALUES (%d, 'future')", len(all)+1))
	for _, o := range [][]pgstore.Option{nil, {pgstore.WithoutMigrate()}} {
		_, err = pgstore.Open(ctx, u, o...)
		if !errors.Is(err, pgstore.ErrSchema) || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Open of a newer database: %v", err)
		}
	}
	exec(fmt.Sprintf("DELETE FROM schema_migrations WHERE version = %d", len(all)+1))
	s = open(t, u)
	if _, err := s.GetRun(ctx, "r1"); err != nil {
		t.Fatalf("run lost across refused opens: %v", err)
	}
}

// allVersions returns the versions of the migrations in migrations/.
func allVersions(t *testing.T) []int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %v", files, err)
	}
	var out []int
	for i := range files {
		out = append(out, i+1)
	}
	return out
}

// TestMigrate_Concurrent: hosts starting together on an empty database
// apply each migration once.
func TestMigrate_Concurrent(t *testing.T) {
	u := pgtest.URL(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []int
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := pgstore.Migrate(context.Background(), u)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, applied...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if want := allVersions(t); fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("migrations applied by 4 concurrent callers: %v, want %v once", all, want)
	}
}
