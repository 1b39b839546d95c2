// Package pgtest gives tests a throwaway PostgreSQL: one cluster per test
// binary, started on first use from the PostgreSQL server binaries
// installed on the machine (initdb into a temporary directory, a free port
// on 127.0.0.1, the socket in that directory, fsync on), and one fresh
// database per test.
//
// Use Main (or M) in TestMain, so the cluster is stopped when the tests
// end, and URL in each test. When no server binaries are found URL skips the test,
// unless BULKHEAD_REQUIRE_POSTGRES=1, which makes it fail. Binaries are
// looked up in BULKHEAD_POSTGRES_BIN, then /usr/lib/postgresql/*/bin (the
// newest version), then PATH. As root, the server runs as the postgres user.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// RequireEnv is the environment variable that turns a missing PostgreSQL
// into a test failure.
const RequireEnv = "BULKHEAD_REQUIRE_POSTGRES"

var (
	once    sync.Once
	cl      *Cluster
	startEr error
	dbSeq   atomic.Int64
)

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	Dir  string // data directory and socket directory
	Port int
	bin  string
	run  []string // prefix that runs a command as the cluster's owner
	opts string   // the server's options
}

// Main runs the tests and stops the cluster, if one was started. Call it
// from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	if code := M(m).Run(); code != 0 {
		os.Exit(code)
	}
}

// M wraps m so that its Run also stops the cluster, for TestMain functions
// that hand m to something else, such as goleak.VerifyTestMain(pgtest.M(m)).
func M(m interface{ Run() int }) interface{ Run() int } { return runner{m} }

type runner struct{ m interface{ Run() int } }

func (r runner) Run() int {
	code := r.m.Run()
	if cl != nil {
		if err := cl.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Get returns the binary's cluster, starting it on first use; it skips t
// (fails it under BULKHEAD_REQUIRE_POSTGRES=1) when PostgreSQL is missing.
func Get(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { cl, startEr = start() })
	if startEr != nil {
		if errors.Is(startEr, errMissing) && os.Getenv(RequireEnv) != "1" {
			t.Skipf("pgtest: %v (set %s=1 to fail instead)", startEr, RequireEnv)
		}
		t.Fatalf("pgtest: %v", startEr)
	}
	return cl
}

// URL creates a fresh database for t, dropped when t ends, and returns its
// URL.
func URL(t testing.TB) string {
	t.Helper()
	c := Get(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := c.client("createdb", name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.client("dropdb", "--force", name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.URL(name)
}

// Start starts a cluster of its own, for programs other than tests (the
// cluster demo); stop it with Stop. Errors match ErrMissing when no
// server binaries are installed.
func Start() (*Cluster, error) { return start() }

// ErrMissing: no PostgreSQL server binaries were found.
var ErrMissing = errMissing

// CreateDB creates database name and returns its URL.
func (c *Cluster) CreateDB(name string) (string, error) {
	if err := c.client("createdb", name); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

// URL returns the URL of database db in the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// client runs one of PostgreSQL's client programs against the cluster.
func (c *Cluster) client(name string, args ...string) error {
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres"}, args...)
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

var errMissing = errors.New("PostgreSQL server binaries not found")

func findBin() (string, error) {
	if d := os.Getenv("BULKHEAD_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errMissing
}

func start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres", "createdb", "dropdb"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%w: %v", errMissing, err)
		}
	}
	// As root the server runs as postgres, which must reach the directory:
	// /tmp, not a TMPDIR that may sit in root's home. /tmp also keeps the
	// socket path under the 107 bytes a Unix socket address holds.
	base := ""
	if os.Geteuid() == 0 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w: running as root and %v", errMissing, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.run = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.cmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	for range 5 {
		c.Port, err = freePort()
		if err != nil {
			break
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", c.Port, dir)
		var out []byte
		out, err = c.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts).CombinedOutput()
		if err == nil {
			c.opts = opts
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		err = fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
		if !strings.Contains(string(log), "could not bind") && !strings.Contains(string(log), "in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string(nil), c.run...), filepath.Join(c.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.Dir
	return cmd
}

// Crash stops the server at once, as a crash or a power cut does
// (pg_ctl stop -m immediate): clients lose their connections and new ones
// are refused until Restart. Committed data stays.
func (c *Cluster) Crash() error {
	out, err := c.cmd("pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(c.Dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Restart starts the server Crash stopped, on the same port.
func (c *Cluster) Restart() error {
	out, err := c.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(c.Dir, "data"),
		"-l", filepath.Join(c.Dir, "log"), "-o", c.opts).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return nil
}

// Stop stops the cluster at once (pg_ctl stop -m immediate, which signals
// the postmaster whose PID the data directory records) and removes its
// directory.
func (c *Cluster) Stop() error {
	out, err := c.cmd("pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(c.Dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return os.RemoveAll(c.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
