package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Option configures Open.
type Option interface{ apply(*options) }

type options struct {
	migrate        bool
	maxBatch       int
	committers     int
	maxCheckpoints int
	maxConns       int32
	closeTimeout   time.Duration
	connectTimeout time.Duration
	now            func() time.Time
	retention      time.Duration
	gcInterval     time.Duration
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithoutMigrate makes Open use the schema as it is: it applies no
// migration and fails unless every embedded migration is recorded.
func WithoutMigrate() Option {
	return optionFunc(func(o *options) { o.migrate = false })
}

// WithMaxBatch sets how many CompleteNode calls share one transaction
// (default 256). 1 turns group commit off: each call then runs its own
// transaction on its own connection, and only PostgreSQL's own grouping
// of WAL flushes is left.
func WithMaxBatch(n int) Option {
	return optionFunc(func(o *options) { o.maxBatch = n })
}

// WithCommitters sets how many groups of completions may commit at once,
// each on its own connection (default 2). While one group waits for its
// commit to reach the disk, the next one runs: a completion that arrives
// then does not wait for that flush, and PostgreSQL flushes the WAL of
// groups that commit together once.
func WithCommitters(n int) Option {
	return optionFunc(func(o *options) { o.committers = n })
}

// WithMaxCheckpoints sets how many checkpoints are kept per run and node
// (statestore.DefaultMaxCheckpoints when n < 1).
func WithMaxCheckpoints(n int) Option {
	return optionFunc(func(o *options) { o.maxCheckpoints = n })
}

// WithMaxConns sets the size of the connection pool (default: the URL's
// pool_max_conns, else pgxpool's default of max(4, CPUs)).
func WithMaxConns(n int) Option {
	return optionFunc(func(o *options) { o.maxConns = int32(n) })
}

// WithCloseTimeout bounds Close (default 10 s): queued completions that are
// not committed by then, and calls still running, fail.
func WithCloseTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.closeTimeout = d })
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.now = now })
}

// Store is a statestore.Store on PostgreSQL. Open it with Open.
type Store struct {
	opts options
	pool *pgxpool.Pool
	// writes holds the sessions of the group transactions (runGroup),
	// which plan their statements once (Open).
	writes *pgxpool.Pool
	addr   string // host:port, for messages

	life   context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	mu     sync.RWMutex // guards closed and sends on queue
	closed bool
	queue  chan *op
	// intake is held by the committer taking the next group (commitLoop,
	// gather). busy counts the groups in flight; flying and prev are the
	// sizes of the last two started. A group that ends leaves a token in
	// freed.
	intake             sync.Mutex
	busy, flying, prev atomic.Int32
	freed              chan struct{}
	groupWait          atomic.Int64 // a time.Duration
	committerDone      chan struct{}
	// gcStop stops the retention GC; gcDone is closed when it returned.
	gcStop, gcDone chan struct{}
	calls          sync.WaitGroup // calls in progress, but for queued completions
	grouped        atomic.Int64   // groups of more than one completion committed together
	runs           runCache       // unfinished runs' stored form, for UpdateRun
	closeOnce      sync.Once
	closeErr       error
}

var _ statestore.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string), applies the embedded migrations under an advisory
// lock (unless WithoutMigrate) and starts the committer. ctx bounds the
// connection and the migrations. Errors name the server's host:port and
// never the password; an unreachable server gives an error matching
// statestore.ErrUnavailable, a schema this binary cannot use one matching
// ErrSchema.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{
		migrate:        true,
		maxBatch:       256,
		committers:     2,
		maxCheckpoints: statestore.DefaultMaxCheckpoints,
		closeTimeout:   10 * time.Second,
		connectTimeout: 10 * time.Second,
		now:            time.Now,
		retention:      statestore.DefaultRetention,
		gcInterval:     10 * time.Minute,
	}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.maxBatch < 1 {
		o.maxBatch = 1
	}
	if o.committers < 1 {
		o.committers = 1
	}
	if o.maxCheckpoints < 1 {
		o.maxCheckpoints = statestore.DefaultMaxCheckpoints
	}
	if o.retention <= 0 {
		o.retention = statestore.DefaultRetention
	}
	if o.gcInterval == 0 {
		o.gcInterval = 10 * time.Minute
	}
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	// Every decision rests on the row a write touches, which READ
	// COMMITTED gives; a stricter database default would only add
	// serialization failures.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	// A host that freezes (SIGSTOP, a VM paused, a GC pause) or loses the
	// network inside a transaction would keep its row locks, and a locked
	// task is skipped by every other host's claim: the server ends such a
	// session after 5s idle in its transaction, and probes a silent
	// client's socket within 11s, so its locks go and its tasks are
	// rescued once their lease ends. A URL's own settings win.
	//
	// Statements are planned for their values (plan_cache_mode): a plan
	// cached for any value would list a rare status by walking every run
	// in creation order. Nothing pgstore runs is long enough to gain from
	// JIT compilation, which costs tens of milliseconds whenever a plan's
	// estimate crosses its threshold.
	for k, v := range map[string]string{
		"plan_cache_mode":                     "force_custom_plan",
		"jit":                                 "off",
		"idle_in_transaction_session_timeout": "5s",
		"tcp_keepalives_idle":                 "5",
		"tcp_keepalives_interval":             "2",
		"tcp_keepalives_count":                "3",
	} {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.connectTimeout
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open %s: %w", addr, translate(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connect to %s: %w", addr, translate(err))
	}
	if o.migrate {
		_, err = migrate(ctx, pool)
	} else {
		err = checkSchema(ctx, pool)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %s: %w", addr, err)
	}
	// The group transactions have sessions of their own, one per
	// committer (with group commit off, as many as the calls' pool):
	// their statements find every row through a primary key, whatever the
	// values, so these sessions plan each statement once, and without
	// sequential scans, hash or merge joins, so that a plan made while the
	// tables were new and small still reads only the rows of its group
	// once they are large.
	wcfg := cfg.Copy()
	if o.maxBatch > 1 {
		wcfg.MaxConns = int32(o.committers)
	}
	for k, v := range map[string]string{
		"plan_cache_mode":  "force_generic_plan",
		"enable_seqscan":   "off",
		"enable_hashjoin":  "off",
		"enable_mergejoin": "off",
	} {
		wcfg.ConnConfig.RuntimeParams[k] = v
	}
	writes, err := pgxpool.NewWithConfig(ctx, wcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: open %s: %w", addr, translate(err))
	}
	life, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts:          o,
		pool:          pool,
		writes:        writes,
		addr:          addr,
		life:          life,
		cancel:        cancel,
		queue:         make(chan *op, o.maxBatch),
		freed:         make(chan struct{}, o.committers),
		committerDone: make(chan struct{}),
		gcStop:        make(chan struct{}),
		gcDone:        make(chan struct{}),
	}
	s.groupWait.Store(int64(groupWait))
	var committers sync.WaitGroup
	for range s.opts.committers {
		committers.Go(s.commitLoop)
	}
	go func() {
		committers.Wait()
		close(s.committerDone)
	}()
	go s.gcLoop()
	return s, nil
}

// parseConfig parses url; its errors never repeat the URL, which may hold
// a password.
func parseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: pgstore: malformed database URL", statestore.ErrInvalid)
	}
	return cfg, nil
}

// Close implements statestore.Store. It lets the committer finish every
// completion already queued and the calls in progress return, then closes
// the pool; it waits at most WithCloseTimeout, then cancels what still
// runs and returns an error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		close(s.gcStop)
		deadline := time.Now().Add(s.opts.closeTimeout)
		drained := make(chan struct{})
		go func() {
			<-s.committerDone
			<-s.gcDone // a GC in progress is a call: the drain bounds it
			s.calls.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(time.Until(deadline)):
			s.cancel()
			<-drained
			s.closeErr = fmt.Errorf("pgstore: close %s: calls in progress not done within %v", s.addr, s.opts.closeTimeout)
		}
		poolDone := make(chan struct{})
		go func() {
			s.writes.Close()
			s.pool.Close()
			close(poolDone)
		}()
		select {
		case <-poolDone:
		case <-time.After(time.Until(deadline)):
			// Calls still running end now. A connection to a server that
			// does not answer takes pgx up to 15 s to give up on; it is
			// left to finish in the background.
			s.cancel()
			select {
			case <-poolDone:
			case <-time.After(100 * time.Millisecond):
				s.closeErr = errors.Join(s.closeErr, fmt.Errorf("pgstore: close %s: connections not closed within %v", s.addr, s.opts.closeTimeout))
			}
		}
		s.cancel()
	})
	return s.closeErr
}

// begin checks that the store is open and returns the context for one
// call: ctx, also cancelled when Close gives up waiting.
func (s *Store) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, statestore.ErrClosed
	}
	s.calls.Add(1)
	s.mu.RUnlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel(); s.calls.Done() }, nil
}

// do runs fn with a call context and translates its error. Close waits for
// it to return.
func (s *Store) do(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return s.translateCall(ctx, fn(cctx))
}

// translateCall maps err for a call made with ctx: a cancellation caused by
// Close is ErrClosed.
func (s *Store) translateCall(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && s.life.Err() != nil && errors.Is(err, context.Canceled) {
		return statestore.ErrClosed
	}
	return translate(err)
}

// errServer marks an error the server reported that no sentinel covers.
var errServer = errors.New("pgstore: server error")

// translate keeps pgx's errors from escaping: it maps them onto the
// statestore sentinels and keeps only their text.
func translate(err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, statestore.ErrNotFound), errors.Is(err, statestore.ErrConflict),
		errors.Is(err, statestore.ErrInvalid), errors.Is(err, statestore.ErrClosed),
		errors.Is(err, statestore.ErrUnavailable), errors.Is(err, statestore.ErrNoSpace), errors.Is(err, statestore.ErrFenced),
		errors.Is(err, ErrSchema), errors.Is(err, errChanged), errors.Is(err, errDecode), errors.Is(err, errServer):
		return err
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return fmt.Errorf("pgstore: %w", context.DeadlineExceeded)
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %v", statestore.ErrNotFound, err)
	case errors.As(err, &pe):
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("%w: %s", statestore.ErrConflict, pe.Message)
		case pe.Code == "23503":
			return fmt.Errorf("%w: %s", statestore.ErrNotFound, pe.Message)
		case pe.Code == "53100":
			return fmt.Errorf("%w: pgstore: %s", statestore.ErrNoSpace, pe.Message)
		case pe.Code[:2] == "08", pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300":
			return fmt.Errorf("%w: %s (%s)", statestore.ErrUnavailable, pe.Message, pe.Code)
		}
		return fmt.Errorf("%w: %s (%s)", errServer, pe.Message, pe.Code)
	}
	// Everything else comes from the connection: refused, reset, closed.
	return fmt.Errorf("%w: %s", statestore.ErrUnavailable, strings.Join(strings.Fields(err.Error()), " "))
}
