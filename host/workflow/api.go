package workflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// NodeStatus is the state of one node of a run.
type NodeStatus string

// Node states.
const (
	NodePending   NodeStatus = "pending"   // waiting for its needs or a worker
	NodeRunning   NodeStatus = "running"   // executing in this engine now
	NodeSucceeded NodeStatus = "succeeded" // journaled (possibly from a fallback)
	NodeFailed    NodeStatus = "failed"    // exhausted its policy: see DeadLetter
	NodeSkipped   NodeStatus = "skipped"   // its condition was false, or every need was skipped
)

// NodeInfo is one node of a run, as Get reports it.
type NodeInfo struct {
	Name string `json:"name"`
	// Kind is what the node runs: plugin, map, timer, event or workflow.
	Kind     string     `json:"kind"`
	Plugin   string     `json:"plugin"`
	Function string     `json:"function"`
	Needs    []string   `json:"needs,omitempty"`
	Status   NodeStatus `json:"status"`
	// Attempts is the number of the attempt that produced the journaled
	// output, else the highest attempt number reserved so far (0: never started).
	Attempts int `json:"attempts"`
	// Version is the plugin version the node runs on (the journal's for a
	// finished node).
	Version    string               `json:"version,omitempty"`
	Progress   *statestore.Progress `json:"progress,omitempty"`
	Output     []byte               `json:"output,omitempty"`
	Fallback   bool                 `json:"fallback,omitempty"`
	StartedAt  time.Time            `json:"started_at,omitzero"`
	FinishedAt time.Time            `json:"finished_at,omitzero"`
	DeadLetter string               `json:"dead_letter,omitempty"`
	// Host ran the node: the journal's for a finished node, the engine's
	// running it here for a running one.
	Host string `json:"host,omitempty"`
	// When is the node's condition; Map the progress of a map node.
	When string   `json:"when,omitempty"`
	Map  *MapInfo `json:"map,omitempty"`
	// Child is the ID of the child run a workflow node started (once it
	// ran).
	Child    string `json:"child,omitempty"`
	Workflow string `json:"workflow,omitempty"`
	// DueAt is when a timer node ends, or when an event node times out.
	DueAt time.Time `json:"due_at,omitzero"`
	// Awaits names the event an event node waits for.
	Awaits string `json:"awaits,omitempty"`
}

// RunInfo is a run with the state of each of its nodes.
type RunInfo struct {
	statestore.Run
	// Active is true while this engine executes the run.
	Active bool `json:"active"`
	// Nodes in the workflow's topological order.
	Nodes []NodeInfo `json:"nodes"`
}

// Get returns a run with per-node status, attempts, versions, progress and
// outputs. Errors: ErrNotFound.
func (e *Engine) Get(ctx context.Context, runID string) (RunInfo, error) {
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return RunInfo{}, err
	}
	info := RunInfo{Run: r}
	w, err := e.workflowOf(r)
	if err != nil {
		return info, fmt.Errorf("workflow of run %s: %w", runID, err)
	}
	results, err := e.store.NodeResults(ctx, runID)
	if err != nil {
		return info, err
	}
	e.mu.Lock()
	rs := e.runs[runID]
	e.mu.Unlock()
	running := map[string]bool{}
	progress := r.Progress
	var liveFailed map[string][]ItemError
	if rs != nil {
		info.Active = true
		rs.mu.Lock()
		for n := range rs.running {
			running[n] = true
		}
		progress = progressCopy(rs.progress)
		liveFailed = maps.Clone(rs.maps)
		rs.mu.Unlock()
	}
	failed := map[string]string{}
	if r.Status == statestore.StatusFailed {
		dls, _, err := e.store.ListDeadLetters(ctx, statestore.DeadLetterFilter{RunID: runID, Limit: 1000})
		if err == nil {
			for _, d := range dls {
				failed[d.Node] = d.ID
			}
		}
	}
	for _, name := range w.Order {
		n := w.Nodes[name]
		ni := NodeInfo{Name: name, Plugin: n.Plugin, Function: n.Function, Needs: n.Needs,
			Status: NodePending, Version: r.Versions[name], Kind: n.Kind()}
		if p, ok := progress[name]; ok {
			ni.Progress = &p
		}
		if n.When != nil {
			ni.When = n.When.Source
		}
		if n.Map != nil {
			ni.Map = mapInfo(n, results, liveFailed[name])
		}
		if n.Workflow != "" {
			ni.Workflow, ni.Child = n.Workflow, ChildRunID(runID, name)
			if _, err := e.store.GetRun(ctx, ni.Child); err != nil {
				ni.Child = ""
			}
		}
		if res, ok := results[name]; ok {
			ni.Status, ni.Attempts, ni.Output, ni.Fallback = NodeSucceeded, res.Attempts, res.Output, res.Fallback
			ni.StartedAt, ni.FinishedAt, ni.Host = res.StartedAt, res.FinishedAt, res.Host
			if res.PluginVersion != "" {
				ni.Version = res.PluginVersion
			}
			if res.Skipped {
				ni.Status = NodeSkipped
			}
		} else {
			if ni.Attempts, err = e.store.LastAttempt(ctx, runID, name); err != nil {
				return info, err
			}
			switch {
			case running[name]:
				ni.Status, ni.Host = NodeRunning, e.o.owner
			case failed[name] != "":
				ni.Status, ni.DeadLetter = NodeFailed, failed[name]
			}
			builtinInfo(&ni, r, n, results)
		}
		info.Nodes = append(info.Nodes, ni)
	}
	return info, nil
}

// List returns a page of runs (see statestore.RunFilter) and the cursor of
// the next page ("" on the last).
func (e *Engine) List(ctx context.Context, f statestore.RunFilter) ([]statestore.Run, string, error) {
	return e.store.ListRuns(ctx, f)
}

// Cancel marks an unfinished run cancelled and stops its running nodes
// (their context is cancelled; their results are not journaled), and
// cancels its unfinished parent and child runs (workflow nodes). Errors:
// ErrNotFound, ErrFinished (the run had already finished; it is returned).
func (e *Engine) Cancel(ctx context.Context, runID string) (statestore.Run, error) {
	already := false
	r, err := e.store.UpdateRun(ctx, runID, func(r *statestore.Run) error {
		already = r.Status.Finished()
		if !already {
			r.Status = statestore.StatusCancelled
			r.Error = "cancelled"
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if already {
		return r, fmt.Errorf("run %s is %s: %w", runID, r.Status, ErrFinished)
	}
	// Its nodes here stop now; on other engines sharing the store, at
	// their next heartbeat, which finds their claims dropped.
	if err := e.store.DropTasks(ctx, runID); err != nil {
		e.log.Warn("tasks of a cancelled run not dropped; they are when claimed", "run_id", runID, "err", err)
	}
	e.mu.Lock()
	rs := e.runs[runID]
	e.mu.Unlock()
	wf := r.Workflow
	if rs != nil {
		rs.mu.Lock()
		rs.finishing = true
		rs.mu.Unlock()
		rs.cancel()
		e.forget(rs)
		wf = rs.wf.Name
	}
	e.notify(runID, false)
	e.emit(Event{Kind: EventRunFinished, RunID: runID, Workflow: wf, Status: statestore.StatusCancelled, Err: "cancelled"})
	e.cancelRelated(ctx, r)
	if already {
		return r, fmt.Errorf("run %s is %s: %w", runID, r.Status, ErrFinished)
	}
	return r, nil
}

// Resume makes a run that is not executing run again from where it
// stopped: an unfinished run (after Stop, or when the engine did not
// resume on Start), a failed one (its failed node runs again; its dead
// letter stays) or a cancelled one. Finished nodes are not run again.
// With upgrade, every node not finished yet runs on the plugin version
// loaded now instead of the one the run started with. A run that is
// already executing is returned as it is. Its failed or cancelled parent
// and child runs (workflow nodes) are resumed too. Errors: ErrNotFound,
// ErrFinished (the run succeeded), ErrUnknownPlugin, ErrNotStarted.
func (e *Engine) Resume(ctx context.Context, runID string, upgrade bool) (statestore.Run, error) {
	return e.resume(ctx, runID, upgrade, nil)
}

func (e *Engine) resume(ctx context.Context, runID string, upgrade bool, attrs map[string]string) (statestore.Run, error) {
	if !e.running() {
		return statestore.Run{}, ErrNotStarted
	}
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return r, err
	}
	if r.Status == statestore.StatusSucceeded {
		return r, fmt.Errorf("run %s: %w", runID, ErrFinished)
	}
	w, err := e.workflowOf(r)
	if err != nil {
		return r, err
	}
	var versions map[string]string
	if upgrade {
		versions = map[string]string{}
		for _, name := range w.Order {
			n := w.Nodes[name]
			if n.Workflow != "" {
				continue
			}
			v, err := e.loadedVersion(n.Plugin, n.Version)
			if err != nil {
				return r, fmt.Errorf("node %s: %w", name, err)
			}
			versions[name] = v
		}
	}
	r, err = e.store.UpdateRun(ctx, runID, func(r *statestore.Run) error {
		if r.Status == statestore.StatusSucceeded {
			return ErrFinished
		}
		r.Status, r.Error, r.Output = statestore.StatusRunning, "", nil
		if r.Attrs != nil {
			delete(r.Attrs, AttrDeadLetter)
		}
		for k, v := range attrs {
			if r.Attrs == nil {
				r.Attrs = map[string]string{}
			}
			r.Attrs[k] = v
		}
		for k, v := range versions {
			if r.Versions == nil {
				r.Versions = map[string]string{}
			}
			r.Versions[k] = v
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	e.execute(runID)
	e.mu.Lock()
	e.seen.remove(runID) // its next node reports the resume
	e.mu.Unlock()
	if err := e.requeue(ctx, runID); err != nil {
		return r, err
	}
	e.poke()
	e.resumeRelated(ctx, r, upgrade)
	return r, nil
}

// DeadLetters returns a page of dead letters and the After of the next
// page ("" on the last).
func (e *Engine) DeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error) {
	return e.store.ListDeadLetters(ctx, f)
}

// DeadLetter returns one dead letter. Errors: ErrNotFound.
func (e *Engine) DeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	return e.store.GetDeadLetter(ctx, id)
}

// DeleteDeadLetter removes one dead letter (its run stays failed).
// Errors: ErrNotFound.
func (e *Engine) DeleteDeadLetter(ctx context.Context, id string) error {
	return e.store.DeleteDeadLetter(ctx, id)
}

// PurgeDeadLetters removes every dead letter and returns how many.
func (e *Engine) PurgeDeadLetters(ctx context.Context) (int, error) {
	n := 0
	for {
		page, _, err := e.store.ListDeadLetters(ctx, statestore.DeadLetterFilter{Limit: 500})
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, d := range page {
			if err := e.store.DeleteDeadLetter(ctx, d.ID); err != nil && !errors.Is(err, statestore.ErrNotFound) {
				return n, err
			}
			n++
		}
	}
}

// Replay resumes the run of a dead letter from its failed node, with the
// journaled outputs of the nodes that finished before; with upgrade, on
// the plugin versions loaded now. The dead letter is deleted once the run
// is running again (a new failure writes a new one). Errors: ErrNotFound,
// ErrFinished, ErrUnknownPlugin, ErrNotStarted.
func (e *Engine) Replay(ctx context.Context, deadLetterID string, upgrade bool) (statestore.Run, error) {
	d, err := e.store.GetDeadLetter(ctx, deadLetterID)
	if err != nil {
		return statestore.Run{}, err
	}
	r, err := e.resume(ctx, d.RunID, upgrade, map[string]string{AttrReplayedFrom: d.ID})
	if err != nil {
		return r, err
	}
	if err := e.store.DeleteDeadLetter(ctx, d.ID); err != nil && !errors.Is(err, statestore.ErrNotFound) {
		return r, err
	}
	return r, nil
}

// Checkpoints lists the kept checkpoints of a run's node, or of all its
// nodes when node is "".
func (e *Engine) Checkpoints(ctx context.Context, runID, node string) ([]statestore.Checkpoint, error) {
	return e.store.ListCheckpoints(ctx, runID, node)
}
