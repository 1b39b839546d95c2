package statestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Sentinel errors. Every implementation returns these (possibly wrapped), so
// callers match them with errors.Is.
var (
	// ErrNotFound: the run, node result, checkpoint, key or dead letter does not exist.
	ErrNotFound = errors.New("statestore: not found")
	// ErrConflict: the write contradicts what is already stored (a run ID reused
	// with another input, a node completed twice, an attempt number that does not
	// increase, a dead-letter ID reused). The stored record is left as it was.
	ErrConflict = errors.New("statestore: conflict")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("statestore: closed")
	// ErrInvalid: an argument is malformed (an empty ID, an ID containing a NUL
	// byte, an unknown status, a negative limit).
	ErrInvalid = errors.New("statestore: invalid argument")
)

// ErrNoSpace: the write was refused because the store's file system is
// (nearly) full. Nothing of it was stored; the same write succeeds once
// space is freed.
var ErrNoSpace = errors.New("statestore: no space left")

// ErrUnavailable: the store's database cannot be reached (refused or lost
// connections, a server shutting down). The write may or may not have been
// applied; the same call can succeed once the database is back.
var ErrUnavailable = errors.New("statestore: unavailable")

// Defaults shared by every implementation.
const (
	// DefaultMaxCheckpoints is how many checkpoints are kept per run and node.
	DefaultMaxCheckpoints = 10
	// DefaultRetention is how long a finished run, its journal and its
	// checkpoints are kept after it finished.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultListLimit is the page size when a filter's Limit is 0.
	DefaultListLimit = 100
)

// RunStatus is the life-cycle state of a run.
type RunStatus string

// Run states. Pending and Running are unfinished; the others are finished.
const (
	StatusPending   RunStatus = "pending"
	StatusRunning   RunStatus = "running"
	StatusSucceeded RunStatus = "succeeded"
	StatusFailed    RunStatus = "failed"
	StatusCancelled RunStatus = "cancelled"
)

// Finished reports whether s is a terminal state (succeeded, failed, cancelled).
func (s RunStatus) Finished() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// Valid reports whether s is one of the five known states.
func (s RunStatus) Valid() bool {
	return s == StatusPending || s == StatusRunning || s.Finished()
}

// Progress is what a node last reported about its own progress.
type Progress struct {
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Message string `json:"message,omitempty"`
}

// Run is one execution of a workflow.
type Run struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Input    []byte `json:"input,omitempty"`
	// InputHash is the hex SHA-256 of Input. CreateRun fills it in when empty.
	InputHash string    `json:"input_hash"`
	Status    RunStatus `json:"status"`
	Output    []byte    `json:"output,omitempty"`
	Error     string    `json:"error,omitempty"`
	// CreatedAt and UpdatedAt are set by the store. FinishedAt is set by the
	// store when the status becomes finished (unless the caller set it) and
	// cleared when it becomes unfinished again.
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Versions maps node name to the plugin version (content hash) it runs on.
	Versions map[string]string `json:"versions,omitempty"`
	// Progress maps node name to its last reported progress.
	Progress map[string]Progress `json:"progress,omitempty"`
	// Attrs holds free-form annotations (who submitted it, replay source, ...).
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Clone returns a deep copy of r.
func (r Run) Clone() Run {
	r.Input = cloneBytes(r.Input)
	r.Output = cloneBytes(r.Output)
	r.Versions = maps.Clone(r.Versions)
	r.Progress = maps.Clone(r.Progress)
	r.Attrs = maps.Clone(r.Attrs)
	return r
}

// NodeResult is the journal entry of a finished node.
type NodeResult struct {
	RunID         string    `json:"run_id"`
	Node          string    `json:"node"`
	Output        []byte    `json:"output,omitempty"`
	Attempts      int       `json:"attempts"`
	PluginVersion string    `json:"plugin_version,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	// Fallback is true when Output came from the node's fallback, not its plugin.
	Fallback bool `json:"fallback,omitempty"`
	// Host is the host (engine owner) that ran the node.
	Host string `json:"host,omitempty"`
	// Skipped is true when the node did not run: its condition was false
	// (Output is empty).
	Skipped bool `json:"skipped,omitempty"`
}

// NodeAttempt records that an attempt of a node started.
type NodeAttempt struct {
	RunID     string    `json:"run_id"`
	Node      string    `json:"node"`
	Attempt   int       `json:"attempt"`
	StartedAt time.Time `json:"started_at"`
}

// Checkpoint is one state snapshot saved by a node while it runs.
type Checkpoint struct {
	RunID string
	Node  string
	// Seq increases by one per saved checkpoint of the same run and node.
	Seq       uint64
	Data      []byte
	CreatedAt time.Time
}

// AttemptError is the failure of one attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
	// Host is the host (engine owner) that ran the attempt.
	Host string `json:"host,omitempty"`
}

// DeadLetter is a node that exhausted its policy, kept for inspection and replay.
type DeadLetter struct {
	// ID is chosen by the caller or, when empty, by PutDeadLetter. Generated IDs
	// sort in creation order.
	ID            string         `json:"id"`
	RunID         string         `json:"run_id"`
	Workflow      string         `json:"workflow"`
	Node          string         `json:"node"`
	Input         []byte         `json:"input,omitempty"`
	PluginVersion string         `json:"plugin_version,omitempty"`
	Attempts      []AttemptError `json:"attempts,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
}

// Clone returns a deep copy of d.
func (d DeadLetter) Clone() DeadLetter {
	d.Input = cloneBytes(d.Input)
	if d.Attempts != nil {
		d.Attempts = append([]AttemptError(nil), d.Attempts...)
	}
	return d
}

// RunFilter selects a page of runs for ListRuns. Runs are ordered by
// creation time, then ID, oldest first (newest first with Newest).
type RunFilter struct {
	// Status, when not empty, keeps only runs in that state.
	Status RunStatus
	// After is the opaque cursor returned by the previous page; "" starts at the beginning.
	After string
	// Limit is the page size; 0 means DefaultListLimit.
	Limit int
	// Newest lists the newest runs first.
	Newest bool
}

// DeadLetterFilter selects a page of dead letters, ordered by ID.
type DeadLetterFilter struct {
	// RunID, when not empty, keeps only that run's dead letters.
	RunID string
	// After is the ID of the last dead letter of the previous page.
	After string
	// Limit is the page size; 0 means DefaultListLimit.
	Limit int
}

// Runs stores runs. A run is created once and then changed only through UpdateRun.
type Runs interface {
	// CreateRun stores r durably (fsynced) and returns it as stored, with
	// created=true. The store fills InputHash (when empty), Status (pending when
	// empty), CreatedAt and UpdatedAt. It is idempotent by ID: when a run with
	// r.ID exists with the same Workflow and InputHash, it returns that run
	// unchanged with created=false and a nil error. Errors: ErrConflict when the
	// ID exists with another workflow or input (the existing run is returned too),
	// ErrInvalid, ErrClosed.
	CreateRun(ctx context.Context, r Run) (Run, bool, error)
	// GetRun returns the run. Errors: ErrNotFound, ErrInvalid, ErrClosed.
	GetRun(ctx context.Context, id string) (Run, error)
	// UpdateRun atomically reads the run, calls fn on a copy and durably stores
	// the result, which it returns. fn may be called more than once when
	// another update races with it, so it must have no side effects besides
	// changing the run; it may call the store. When fn returns an error nothing
	// is written and that error is returned. ID, Workflow, Input, InputHash and
	// CreatedAt cannot be changed (changes are ignored). Errors: ErrNotFound,
	// ErrInvalid (an unknown status), ErrClosed, or fn's error.
	UpdateRun(ctx context.Context, id string, fn func(*Run) error) (Run, error)
	// ListRuns returns one page of runs and the cursor of the next page ("" when
	// this is the last one). It reads an index of the filter (every run, or
	// the runs of f.Status), so a page costs the same however many runs are
	// stored. Errors: ErrInvalid (bad cursor or limit, unknown status), ErrClosed.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, string, error)
	// UnfinishedRuns returns every pending or running run, oldest first. It
	// reads an index of unfinished runs, so its cost does not grow with the
	// number of finished ones. Errors: ErrClosed.
	UnfinishedRuns(ctx context.Context) ([]Run, error)
	// CountRuns returns how many runs have the status. It reads the status
	// index without loading the runs, so its cost grows with that count
	// only. Errors: ErrInvalid (an unknown status), ErrClosed.
	CountRuns(ctx context.Context, status RunStatus) (int, error)
}

// Journal records node attempts and completions.
type Journal interface {
	// CompleteNode durably (fsynced) journals a finished node. The first
	// completion of a run's node wins: a second one returns ErrConflict and
	// leaves the first in place (read it with NodeResults). FinishedAt is set
	// to now when zero.
	//
	// next are attempts of other nodes of the same run, recorded as
	// StartAttempt would record them, atomically with the completion and in
	// the same fsynced write: either the completion and every attempt are
	// stored, or nothing is. The engine reserves the attempt numbers of the
	// nodes a completion makes ready this way, so they cost no write of
	// their own. When an attempt is not greater than its node's last
	// recorded attempt, nothing is written and the error matches ErrConflict
	// (as for a node already completed; NodeResults tells them apart).
	//
	// Errors: ErrConflict, ErrNotFound (no such run), ErrInvalid (also an
	// attempt of another run, of res.Node itself, two attempts of one node,
	// or Attempt < 1), ErrClosed.
	CompleteNode(ctx context.Context, res NodeResult, next ...NodeAttempt) error
	// StartAttempt durably records that an attempt of a node began, so that
	// after a crash LastAttempt tells the next attempt number. StartedAt is set
	// to now when zero. Errors: ErrConflict when a.Attempt is not greater than
	// the last recorded attempt, ErrNotFound (no such run), ErrInvalid
	// (Attempt < 1), ErrClosed.
	StartAttempt(ctx context.Context, a NodeAttempt) error
	// NodeResults returns the run's finished nodes keyed by node name (empty,
	// not an error, when none finished). Errors: ErrInvalid, ErrClosed.
	NodeResults(ctx context.Context, runID string) (map[string]NodeResult, error)
	// NodeResultsOf returns the entries of the named nodes of the run that
	// are journaled, keyed by node name; a name that is not journaled is
	// absent. It reads those entries only, so its cost does not grow with
	// the rest of the run's journal. Errors: ErrInvalid (also an invalid
	// node name), ErrClosed.
	NodeResultsOf(ctx context.Context, runID string, nodes []string) (map[string]NodeResult, error)
	// LastAttempt returns the highest attempt number recorded by StartAttempt,
	// or 0 when none was. Errors: ErrInvalid, ErrClosed.
	LastAttempt(ctx context.Context, runID, node string) (int, error)
}

// Checkpoints stores the snapshots nodes save while they run.
type Checkpoints interface {
	// SaveCheckpoint durably (fsynced) stores data as the newest checkpoint of
	// the run's node and returns its sequence number (1 for the first one). Only
	// the newest N per node are kept (DefaultMaxCheckpoints unless the
	// implementation is configured otherwise). Errors: ErrNotFound (no such
	// run), ErrInvalid, ErrClosed.
	SaveCheckpoint(ctx context.Context, runID, node string, data []byte) (uint64, error)
	// LatestCheckpoint returns the newest checkpoint of the run's node.
	// Errors: ErrNotFound when there is none, ErrInvalid, ErrClosed.
	LatestCheckpoint(ctx context.Context, runID, node string) (Checkpoint, error)
	// ListCheckpoints returns the kept checkpoints of the run's node, or of
	// every node when node is "", ordered by node then Seq. Errors: ErrInvalid,
	// ErrClosed.
	ListCheckpoints(ctx context.Context, runID, node string) ([]Checkpoint, error)
}

// PluginState is durable key-value state scoped to a plugin name. It is not
// removed by run retention.
type PluginState interface {
	// StateGet returns the value. Errors: ErrNotFound, ErrInvalid, ErrClosed.
	StateGet(ctx context.Context, plugin, key string) ([]byte, error)
	// StateSet durably stores value (nil is stored as empty). Errors: ErrInvalid, ErrClosed.
	StateSet(ctx context.Context, plugin, key string, value []byte) error
	// StateDelete durably removes the key; removing a missing key is not an
	// error. Errors: ErrInvalid, ErrClosed.
	StateDelete(ctx context.Context, plugin, key string) error
	// StateUsage returns how many keys the plugin's state holds and their
	// bytes. It reads every key of the plugin, so callers count on from its
	// answer rather than asking per write. Errors: ErrInvalid, ErrClosed.
	StateUsage(ctx context.Context, plugin string) (StateUsage, error)
}

// StateUsage is the size of one plugin's state: Bytes counts the bytes of
// every key and value.
type StateUsage struct {
	Keys  int64
	Bytes int64
}

// DeadLetters stores nodes that exhausted their policy. A run that has dead
// letters is not removed by retention until they are deleted.
type DeadLetters interface {
	// PutDeadLetter durably stores d and returns it as stored; the store fills
	// ID (when empty) and CreatedAt (when zero). Errors: ErrConflict when the ID
	// exists (the stored one is left as it was), ErrInvalid, ErrClosed.
	PutDeadLetter(ctx context.Context, d DeadLetter) (DeadLetter, error)
	// GetDeadLetter returns one dead letter. Errors: ErrNotFound, ErrInvalid, ErrClosed.
	GetDeadLetter(ctx context.Context, id string) (DeadLetter, error)
	// ListDeadLetters returns one page ordered by ID and the ID to pass as
	// After for the next page ("" when this is the last one). It reads an
	// index (every dead letter, or those of f.RunID), so a page costs the
	// same however many are stored. Errors: ErrInvalid, ErrClosed.
	ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, string, error)
	// DeleteDeadLetter durably removes one dead letter. Errors: ErrNotFound,
	// ErrInvalid, ErrClosed.
	DeleteDeadLetter(ctx context.Context, id string) error
	// CountDeadLetters returns how many dead letters are stored. Errors: ErrClosed.
	CountDeadLetters(ctx context.Context) (int, error)
}

// Store is everything the workflow engine persists. Implementations are safe
// for concurrent use.
type Store interface {
	Runs
	Journal
	Checkpoints
	PluginState
	DeadLetters
	Queue
	// Close releases the store. Calls after Close return ErrClosed; Close
	// itself is idempotent.
	Close() error
}

// HashInput returns the hex SHA-256 of input, the value of Run.InputHash.
func HashInput(input []byte) string {
	sum := sha256.Sum256(input)
	return hex.EncodeToString(sum[:])
}

// CheckID returns an ErrInvalid error when id is empty or contains a NUL
// byte. what names the argument in the message.
func CheckID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("%w: %s %q contains a NUL byte", ErrInvalid, what, id)
	}
	return nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
