package badgerstore

import (
	"log/slog"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Defaults of the options.
const (
	// DefaultGCInterval is how often retention and value-log GC run.
	DefaultGCInterval = 10 * time.Minute
	// DefaultMaxBatch is the most writes one group commit takes.
	DefaultMaxBatch = 1024
	// DefaultCloseTimeout bounds Close.
	DefaultCloseTimeout = 10 * time.Second
)

// Option configures Open.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger         *slog.Logger
	retention      time.Duration
	gcInterval     time.Duration
	maxCheckpoints int
	maxBatch       int
	syncWrites     bool
	now            func() time.Time
	reserve        int64
	closeTimeout   time.Duration
}

func defaultOptions() options {
	return options{
		retention:      statestore.DefaultRetention,
		gcInterval:     DefaultGCInterval,
		maxCheckpoints: statestore.DefaultMaxCheckpoints,
		maxBatch:       DefaultMaxBatch,
		now:            time.Now,
		reserve:        DefaultReserve,
		closeTimeout:   DefaultCloseTimeout,
	}
}

// WithLogger sets the logger for the store's own messages and Badger's. Badger's
// info and debug messages are logged at debug level, its warnings and errors at
// warn and error level. nil (the default) discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithRetention sets how long a finished run, its journal and its checkpoints
// are kept after FinishedAt (statestore.DefaultRetention when d <= 0).
func WithRetention(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d > 0 {
			o.retention = d
		}
	})
}

// WithGCInterval sets how often the background GC runs (DefaultGCInterval when
// d == 0). d < 0 disables the background GC; CollectGarbage still works.
func WithGCInterval(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d != 0 {
			o.gcInterval = d
		}
	})
}

// WithMaxCheckpoints sets how many checkpoints are kept per run and node
// (statestore.DefaultMaxCheckpoints when n < 1).
func WithMaxCheckpoints(n int) Option {
	return optionFunc(func(o *options) {
		if n > 0 {
			o.maxCheckpoints = n
		}
	})
}

// WithMaxBatch caps how many writes share one group commit (DefaultMaxBatch
// when n < 1). 1 turns group commit off: every write gets its own fsync.
func WithMaxBatch(n int) Option {
	return optionFunc(func(o *options) {
		if n > 0 {
			o.maxBatch = n
		}
	})
}

// WithSyncWrites makes Badger fsync inside every transaction commit instead
// of the store calling Sync once per group. Off by default; see the package
// documentation for the measured difference.
func WithSyncWrites(on bool) Option {
	return optionFunc(func(o *options) { o.syncWrites = on })
}

// WithClock replaces time.Now (for timestamps and retention).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) {
		if now != nil {
			o.now = now
		}
	})
}

// WithReserve sets the free space, in bytes, that writes leave on the
// store's file system (DefaultReserve when n <= 0). A write that would leave
// less fails with an error matching statestore.ErrNoSpace; Open refuses a
// file system with less than half of it free. Keep it above what Badger
// writes on its own: a memtable flush and a value-log file of GC rewrites
// (80 MiB at bulkhead's sizes).
func WithReserve(n int64) Option {
	return optionFunc(func(o *options) {
		if n > 0 {
			o.reserve = n
		}
	})
}

// WithCloseTimeout bounds how long Close waits for Badger to flush and
// close (DefaultCloseTimeout when d <= 0).
func WithCloseTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d > 0 {
			o.closeTimeout = d
		}
	})
}
