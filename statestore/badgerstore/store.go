package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Errors of Open. They are wrapped with the directory and the cause.
var (
	// ErrInUse: another process, or another Store in this process, has the
	// directory open.
	ErrInUse = errors.New("badgerstore: store directory in use")
	// ErrNotWritable: the directory cannot be created or written (a path
	// under a regular file, missing permissions, a read-only file system).
	ErrNotWritable = errors.New("badgerstore: store directory not writable")
	// ErrCorrupt: the directory holds files Badger cannot read back (a
	// damaged MANIFEST, table or log), or data of another layout.
	ErrCorrupt = errors.New("badgerstore: store directory corrupt")
	// ErrCloseTimeout: Close gave up waiting for Badger to flush (a full
	// disk, a directory removed underneath). On a full disk every
	// acknowledged write is in the logs, and the next Open replays them.
	ErrCloseTimeout = errors.New("badgerstore: store not closed in time")
)

var errLocked = errors.New("locked")

const lockFileName = "bulkhead.lock"

// Store is the Badger implementation of statestore.Store. Open returns one
// with its committer and GC goroutines running; Close stops them.
type Store struct {
	db     *badger.DB
	dir    string
	opts   options
	unlock func()
	space  *space // used by the committer only
	q      *queue // the claims of the task queue

	// mu guards closed. Readers and enqueuers hold it shared for the length
	// of their access to db or queue; Close holds it exclusively to flip
	// closed and close queue.
	mu     sync.RWMutex
	closed bool
	queue  chan *op

	committerDone chan struct{}
	gcCancel      context.CancelFunc
	gcDone        chan struct{}
	closeOnce     sync.Once
	closeDone     chan struct{} // closed when closeErr is set
	closeErr      error
}

var _ statestore.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It returns an error
// wrapping ErrNotWritable, ErrInUse or ErrCorrupt, naming dir and the cause,
// when the directory cannot be used; it never panics on damaged files and
// never starts on a directory it could only open by dropping data it can
// detect as damaged.
func Open(dir string, opts ...Option) (s *Store, err error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := checkWritable(dir); err != nil {
		return nil, err
	}
	if free, err := freeBytes(dir); err == nil && free < o.reserve/2 {
		return nil, fmt.Errorf("%w: %s: %w: %s free, opening needs half the %s reserve", ErrNotWritable, dir,
			statestore.ErrNoSpace, formatBytes(free), formatBytes(o.reserve))
	}
	unlock, err := lockDir(filepath.Join(dir, lockFileName))
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%w: %s is open in another process or store", ErrInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: lock: %w", ErrNotWritable, dir, err)
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	if err := checkFiles(dir); err != nil {
		return nil, err
	}

	bo := badgerOptions(dir, o)
	db, err := openBadger(bo)
	if err != nil {
		return nil, classifyOpenError(dir, err)
	}
	s = &Store{
		db:            db,
		dir:           dir,
		opts:          o,
		unlock:        unlock,
		queue:         make(chan *op, o.maxBatch),
		committerDone: make(chan struct{}),
		gcDone:        make(chan struct{}),
		closeDone:     make(chan struct{}),
		space:         newSpace(dir, o.reserve, o.logger),
	}
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	epoch, err := s.openEpoch()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	s.q = newQueue(epoch)
	go s.commitLoop()
	gcCtx, cancel := context.WithCancel(context.Background())
	s.gcCancel = cancel
	go s.gcLoop(gcCtx)
	return s, nil
}

// openBadger turns a panic inside badger.Open (it has some for damaged
// files) into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("badger panicked while opening: %v", r)
		}
	}()
	return badger.Open(bo)
}

func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrNotWritable, dir)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("probe"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	return nil
}

func classifyOpenError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, dir, err)
}

// checkFormat writes the layout version into a new store, builds the
// status index of a store of layout 1 and refuses a store of another layout.
func (s *Store) checkFormat() error {
	var found string
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		found = string(v)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %s: read format: %v", ErrCorrupt, s.dir, err)
	}
	switch found {
	case formatVersion:
		return nil
	case formatUnindexed:
		if err := s.buildStatusIndex(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotWritable, s.dir, err)
		}
		return nil
	case "":
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, []byte(formatVersion)) }); err != nil {
			return fmt.Errorf("%w: %s: write format: %w", ErrNotWritable, s.dir, err)
		}
		return s.db.Sync()
	default:
		return fmt.Errorf("%w: %s: layout version %q, this build reads %q", ErrCorrupt, s.dir, found, formatVersion)
	}
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close stops the GC, lets queued writes finish, and closes Badger, which
// flushes its memtable. It is idempotent; later calls of other methods
// return statestore.ErrClosed. It waits at most the close timeout
// (WithCloseTimeout): Badger retries a failed flush forever (a full disk,
// the directory removed), and then Close returns an error matching
// ErrCloseTimeout and leaves Badger and the directory lock to the process's
// exit. Unless the directory was removed, nothing acknowledged is lost
// that way: the next Open replays the logs.
func (s *Store) Close() error {
	return s.CloseContext(context.Background())
}

// CloseContext is Close, returning early with ctx's error wrapped in one
// matching ErrCloseTimeout when ctx ends first.
func (s *Store) CloseContext(ctx context.Context) error {
	s.closeOnce.Do(func() { go s.close() })
	t := time.NewTimer(s.opts.closeTimeout)
	defer t.Stop()
	select {
	case <-s.closeDone:
		return s.closeErr
	case <-t.C:
		if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: Badger has not flushed after %s: the directory was removed", ErrCloseTimeout, s.dir, s.opts.closeTimeout)
		}
		return fmt.Errorf("%w: %s: Badger has not flushed after %s (is the disk full?); acknowledged writes are in its logs and the next open replays them",
			ErrCloseTimeout, s.dir, s.opts.closeTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrCloseTimeout, s.dir, ctx.Err())
	}
}

func (s *Store) close() {
	defer close(s.closeDone)
	s.gcCancel()
	<-s.gcDone
	s.mu.Lock()
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.committerDone
	if err := s.db.Close(); err != nil {
		s.closeErr = fmt.Errorf("badgerstore: close %s: %w", s.dir, err)
	}
	s.unlock()
}

// view runs fn in a read transaction unless the store is closed.
func (s *Store) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return statestore.ErrClosed
	}
	if err := s.db.View(fn); err != nil {
		return translate(err)
	}
	return nil
}

// translate keeps Badger's errors from escaping as Badger sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("%w: %v", statestore.ErrNotFound, err)
	case errors.Is(err, badger.ErrDBClosed):
		return statestore.ErrClosed
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %v", statestore.ErrNoSpace, err)
	case errors.Is(err, statestore.ErrNotFound), errors.Is(err, statestore.ErrConflict),
		errors.Is(err, statestore.ErrInvalid), errors.Is(err, statestore.ErrClosed), errors.Is(err, errChanged),
		errors.Is(err, statestore.ErrNoSpace), errors.Is(err, statestore.ErrFenced),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("badgerstore: %v", err)
}
