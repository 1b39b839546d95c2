//go:build wasip1

package bulkhead

import (
	"encoding/json"
	"time"
)

// Checkpointer saves a node's typed state at most once per interval, the way
// a long node resumes after a crash: load once at start, then call Save as
// often as convenient; only the saves an interval apart reach the host.
type Checkpointer[T any] struct {
	interval time.Duration
	last     time.Time
}

// NewAutoCheckpointer returns a Checkpointer whose interval is the host's
// (the config key "bulkhead.checkpoint_interval", which an operator sets
// for every plugin), or 10 seconds when the host sets none.
func NewAutoCheckpointer[T any]() *Checkpointer[T] {
	return NewCheckpointer[T](CheckpointInterval())
}

// CheckpointInterval is the host's automatic checkpoint interval.
func CheckpointInterval() time.Duration {
	if v, ok := Config(configCheckpointInterval); ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return defaultCheckpointInterval
}

// NewCheckpointer returns a Checkpointer that saves at most every interval
// (zero saves every time).
func NewCheckpointer[T any](interval time.Duration) *Checkpointer[T] {
	return &Checkpointer[T]{interval: interval}
}

// Load decodes the newest checkpoint into v and reports whether there was one.
func (c *Checkpointer[T]) Load(v *T) (bool, error) {
	b := LoadCheckpoint()
	if b == nil {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// Save stores v unless the last save is younger than the interval.
func (c *Checkpointer[T]) Save(v T) error {
	if now := time.Now(); c.last.IsZero() || now.Sub(c.last) >= c.interval {
		if err := c.Flush(v); err != nil {
			return err
		}
		c.last = now
	}
	return nil
}

// Flush stores v now.
func (c *Checkpointer[T]) Flush(v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return SaveCheckpoint(b)
}
