package workflow

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// durable is the host.Durable of one node execution: checkpoints of the
// run's node, state of the node's plugin, progress of the run.
type durable struct {
	e       *Engine
	rs      *runState
	node    string
	plugin  string
	attempt int
	// fence is the claim the node runs under: its writes commit only
	// while it holds.
	fence statestore.Fence
	// lost holds the first write refused because the claim was lost.
	lost atomic.Pointer[error]
	// noSpace holds the first write the store refused for lack of space:
	// the guest saw a failure code, and a node that then fails is not at
	// fault.
	noSpace atomic.Pointer[error]
}

// refused returns the store's error when it refused a write of this
// execution for lack of space or because its database was unreachable,
// else nil.
func (d *durable) refused() error {
	if p := d.noSpace.Load(); p != nil {
		return *p
	}
	return nil
}

// fenced returns the error of a write refused because the node's claim
// was lost, else nil.
func (d *durable) fenced() error {
	if p := d.lost.Load(); p != nil {
		return *p
	}
	return nil
}

func (d *durable) note(err error) error {
	switch {
	case errors.Is(err, statestore.ErrNoSpace), errors.Is(err, statestore.ErrUnavailable):
		d.noSpace.CompareAndSwap(nil, &err)
	case errors.Is(err, statestore.ErrFenced):
		d.e.stats.fenced.Add(1)
		d.lost.CompareAndSwap(nil, &err)
	}
	return err
}

// under returns ctx carrying the node's fence.
func (d *durable) under(ctx context.Context) context.Context {
	if d.fence.Owner == "" {
		return ctx
	}
	return statestore.WithFence(ctx, d.fence)
}

func (d *durable) SaveCheckpoint(ctx context.Context, data []byte) error {
	seq, err := d.e.store.SaveCheckpoint(d.under(ctx), d.rs.id, d.node, data)
	if err != nil {
		return d.note(err)
	}
	d.e.emit(Event{Kind: EventCheckpointSaved, RunID: d.rs.id, Workflow: d.rs.wf.Name, Node: d.node, Attempt: d.attempt, Seq: seq})
	return nil
}

func (d *durable) LoadCheckpoint(ctx context.Context) ([]byte, error) {
	cp, err := d.e.store.LatestCheckpoint(ctx, d.rs.id, d.node)
	if errors.Is(err, statestore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d.e.emit(Event{Kind: EventCheckpointLoaded, RunID: d.rs.id, Workflow: d.rs.wf.Name, Node: d.node, Attempt: d.attempt, Seq: cp.Seq})
	if cp.Data == nil {
		return []byte{}, nil
	}
	return cp.Data, nil
}

func (d *durable) StateGet(ctx context.Context, key string) ([]byte, error) {
	b, err := d.e.store.StateGet(ctx, d.plugin, key)
	if errors.Is(err, statestore.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

func (d *durable) StateSet(ctx context.Context, key string, value []byte) error {
	return d.note(d.e.store.StateSet(d.under(ctx), d.plugin, key, value))
}

func (d *durable) StateDelete(ctx context.Context, key string) error {
	return d.note(d.e.store.StateDelete(d.under(ctx), d.plugin, key))
}

func (d *durable) StateUsage(ctx context.Context) (keys, bytes int64, err error) {
	u, err := d.e.store.StateUsage(ctx, d.plugin)
	return u.Keys, u.Bytes, err
}

func (d *durable) Progress(_ context.Context, p abi.Progress) {
	sp := statestore.Progress{Done: p.Done, Total: p.Total, Message: p.Message}
	d.rs.mu.Lock()
	d.rs.progress[d.node] = sp
	d.rs.dirty = true
	d.rs.mu.Unlock()
	d.e.emit(Event{Kind: EventProgress, RunID: d.rs.id, Workflow: d.rs.wf.Name, Node: d.node, Attempt: d.attempt, Progress: sp})
}
