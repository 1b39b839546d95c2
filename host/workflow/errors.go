package workflow

import (
	"errors"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Errors. Match them with errors.Is.
var (
	// ErrInvalid: a workflow file has problems (see *ValidationError).
	ErrInvalid = errors.New("workflow: invalid workflow")
	// ErrUnknownWorkflow: no workflow of that name is registered.
	ErrUnknownWorkflow = errors.New("workflow: unknown workflow")
	// ErrUnknownPlugin: a node's plugin (or its pinned version) is not loaded.
	ErrUnknownPlugin = errors.New("workflow: plugin not loaded")
	// ErrNotFound: no such run or dead letter (it is statestore.ErrNotFound).
	ErrNotFound = statestore.ErrNotFound
	// ErrConflict: a run ID was reused with another workflow or input (it is
	// statestore.ErrConflict).
	ErrConflict = statestore.ErrConflict
	// ErrFinished: the run already succeeded (or, for Cancel, finished).
	ErrFinished = errors.New("workflow: run already finished")
	// ErrNotStarted: the engine is not started, or is stopping.
	ErrNotStarted = errors.New("workflow: engine not running")
)
