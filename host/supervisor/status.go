package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// Sentinel errors.
var (
	// ErrQuarantined: the plugin never had a working version; calls fail
	// fast. The *QuarantineError that matches it carries the reason.
	ErrQuarantined = errors.New("supervisor: plugin quarantined")
	// ErrStarted: Start was called twice, or after Stop.
	ErrStarted = errors.New("supervisor: already started")
)

// QuarantineError is the fast failure of a call to a quarantined plugin.
type QuarantineError struct {
	Plugin string
	Reason string
}

func (e *QuarantineError) Error() string {
	return fmt.Sprintf("plugin %s is quarantined (it has no working version): %s", e.Plugin, e.Reason)
}

// Is matches ErrQuarantined.
func (e *QuarantineError) Is(target error) bool { return target == ErrQuarantined }

// Permanent: retrying cannot help until the plugin's file is fixed.
func (e *QuarantineError) Permanent() bool { return true }

// State is the deployment state of a plugin.
type State string

// Plugin states.
const (
	// StateOK: the newest file on disk is what serves.
	StateOK State = "ok"
	// StateFailed: the last change (module or sidecar) was refused; the
	// previous working version keeps serving. Reason says why.
	StateFailed State = "failed"
	// StateQuarantined: the plugin never had a working version; calls
	// fail fast with a *QuarantineError. Reason says why.
	StateQuarantined State = "quarantined"
)

// Cause says why a plugin was (re)loaded.
type Cause string

// Reload causes.
const (
	CauseAdded    Cause = "added"        // the file appeared, or was there at start
	CauseChanged  Cause = "changed"      // the module's bytes changed
	CauseManifest Cause = "manifest"     // the sidecar manifest changed
	CauseBreaker  Cause = "breaker-open" // the plugin's breaker opened
	CauseTraps    Cause = "traps"        // its calls trapped too often
	CauseManual   Cause = "manual"       // Reload was called
)

// Status is the supervisor's view of one plugin.
type Status struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Reason is why the last change was refused or the plugin is
	// quarantined; for StateOK it is empty.
	Reason string `json:"reason,omitempty"`
	// Version is the version that serves (hex SHA-256), empty when
	// quarantined. FileVersion is the newest version seen on disk; it
	// differs from Version when that file was refused.
	Version     string `json:"version,omitempty"`
	FileVersion string `json:"file_version,omitempty"`
	// LoadedAt is when Version was loaded.
	LoadedAt time.Time `json:"loaded_at"`
	// Loads counts the successful loads (the first one included),
	// LoadFailures the refused ones; Causes counts both by cause, and
	// LastCause is the cause of the latest attempt.
	Loads        uint64           `json:"loads"`
	LoadFailures uint64           `json:"load_failures"`
	Causes       map[Cause]uint64 `json:"causes"`
	LastCause    Cause            `json:"last_cause,omitempty"`
	// Rebuilds counts the supervisor's rebuilds (breaker or traps), and
	// NextRebuild is the earliest the next one may run (backoff).
	Rebuilds    uint64    `json:"rebuilds"`
	NextRebuild time.Time `json:"next_rebuild"`
	// Breaker is the state of the plugin's own breaker
	// (host.PolicyName(Name)); closed when none exists yet.
	Breaker resilience.State `json:"breaker"`
	// Pool figures of the serving version.
	PoolIdle  int `json:"pool_idle"`
	PoolInUse int `json:"pool_in_use"`
	PoolMax   int `json:"pool_max"`
}
