package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Run attribute keys of child runs.
const (
	// AttrParent is the ID of the run a child run was started by.
	AttrParent = "parent_run"
	// AttrParentNode is the parent's node that started it.
	AttrParentNode = "parent_node"
	// AttrDepth counts the parents above a child run.
	AttrDepth = "workflow_depth"
)

// MaxWorkflowDepth bounds how deep child runs nest (a workflow that runs
// itself fails at this depth).
const MaxWorkflowDepth = 16

// ChildRunID is the ID of the child run a `workflow:` node of run parent
// starts: derived from both, so a resumed parent finds the child it
// started.
func ChildRunID(parent, node string) string { return parent + ":" + node }

// childKey reads `workflow: NAME`.
func (p *parser) childKey(n *Node, v *yaml.Node) {
	n.Workflow = p.str(v, "workflow")
	if n.Workflow != "" && !nameRE.MatchString(n.Workflow) {
		p.errf(v.Line, "node %q: workflow %q is not a valid workflow name", n.Name, n.Workflow)
	}
}

// checkChild reports what a child node cannot have.
func (p *parser) checkChild(n *Node) {
	if n.Workflow == "" {
		return
	}
	if n.Plugin != "" {
		p.errf(n.Line, "node %q: set plugin or workflow, not both", n.Name)
	}
	if n.Map != nil || n.Fallback != nil || n.Policy != nil || n.Config != nil {
		p.errf(n.Line, "node %q: a workflow node takes no for_each, fallback, policy or config (its child's nodes have their own)", n.Name)
	}
}

// childPoll is how long a node waiting for its child run gives its claim
// back before looking again: 50ms doubling up to 2s with the claims.
func childPoll(claims int) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < claims && d < 2*time.Second; i++ {
		d *= 2
	}
	return min(d, 2*time.Second)
}

// execChild executes a `workflow:` node: it starts the child run (once:
// its ID is derived from the parent's), and while the child runs gives
// its claim back to look again later, holding no worker. The child's
// output becomes the node's; a failed or cancelled child fails the node.
func (e *Engine) execChild(ctx context.Context, rs *runState, t statestore.Task, n *Node, results map[string]statestore.NodeResult) (statestore.Task, bool) {
	f := t.Fence()
	id := ChildRunID(rs.id, n.Name)
	child, err := e.store.GetRun(ctx, id)
	if errors.Is(err, statestore.ErrNotFound) {
		child, err = e.startChild(ctx, rs, n, id, results)
		if err != nil && !errors.Is(err, statestore.ErrUnavailable) && !errors.Is(err, statestore.ErrNoSpace) && ctx.Err() == nil {
			e.failNode(ctx, rs, f, n, nil, 0, "", err)
			return statestore.Task{}, false
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			e.pause(rs, f, "child run", err)
		}
		return statestore.Task{}, false
	}
	switch {
	case child.Status == statestore.StatusSucceeded:
		now := time.Now()
		return e.completeTask(ctx, rs, f, statestore.NodeResult{RunID: rs.id, Node: n.Name, Output: child.Output,
			Attempts: 1, StartedAt: child.CreatedAt, FinishedAt: now, Host: e.o.owner})
	case child.Status.Finished():
		e.failNode(ctx, rs, f, n, child.Input, 0, "", fmt.Errorf("child run %s %s: %s", id, child.Status, child.Error))
	default:
		e.releaseAfter(f, childPoll(t.Claims))
	}
	return statestore.Task{}, false
}

// startChild submits the child run of node n.
func (e *Engine) startChild(ctx context.Context, rs *runState, n *Node, id string, results map[string]statestore.NodeResult) (statestore.Run, error) {
	r, err := e.store.GetRun(ctx, rs.id)
	if err != nil {
		return statestore.Run{}, err
	}
	depth, _ := strconv.Atoi(r.Attrs[AttrDepth])
	if depth+1 > MaxWorkflowDepth {
		return statestore.Run{}, fmt.Errorf("workflow %s: child runs nest deeper than %d", n.Workflow, MaxWorkflowDepth)
	}
	input, err := inputFor(rs, n, results)
	if err != nil {
		return statestore.Run{}, err
	}
	e.emit(Event{Kind: EventNodeStarted, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: 1})
	ctx = WithRunAttrs(ctx, map[string]string{AttrParent: rs.id, AttrParentNode: n.Name, AttrDepth: strconv.Itoa(depth + 1)})
	return e.Submit(ctx, n.Workflow, input, id)
}

// related returns the runs a cancel or resume of r reaches: the child runs
// its workflow nodes started, and its parent.
func (e *Engine) related(ctx context.Context, r statestore.Run) []string {
	var out []string
	if p := r.Attrs[AttrParent]; p != "" {
		out = append(out, p)
	}
	w, err := e.workflowOf(r)
	if err != nil {
		return out
	}
	for _, name := range w.Order {
		if w.Nodes[name].Workflow != "" {
			out = append(out, ChildRunID(r.ID, name))
		}
	}
	return out
}

// cancelRelated cancels the unfinished parent and children of a cancelled
// run, and theirs.
func (e *Engine) cancelRelated(ctx context.Context, r statestore.Run) {
	for _, id := range e.related(ctx, r) {
		rel, err := e.store.GetRun(ctx, id)
		if err != nil || rel.Status.Finished() {
			continue
		}
		if _, err := e.Cancel(ctx, id); err != nil && !errors.Is(err, ErrFinished) {
			e.log.Warn("related run not cancelled", "run_id", r.ID, "related", id, "err", err)
		}
	}
}

// resumeRelated resumes the failed or cancelled parent and children of a
// resumed run, and theirs.
func (e *Engine) resumeRelated(ctx context.Context, r statestore.Run, upgrade bool) {
	for _, id := range e.related(ctx, r) {
		rel, err := e.store.GetRun(ctx, id)
		if err != nil || (rel.Status != statestore.StatusFailed && rel.Status != statestore.StatusCancelled) {
			continue
		}
		if _, err := e.Resume(ctx, id, upgrade); err != nil {
			e.log.Warn("related run not resumed", "run_id", r.ID, "related", id, "err", err)
		}
	}
}

// unknownChildren reports the workflow nodes of ws that name a workflow
// not in ws.
func unknownChildren(ws map[string]*Workflow) []error {
	var errs []error
	for _, name := range sortedKeys(ws) {
		w := ws[name]
		for _, node := range w.Order {
			n := w.Nodes[node]
			if n.Workflow != "" && ws[n.Workflow] == nil {
				errs = append(errs, &ValidationError{Problems: []Problem{{File: w.File, Line: n.Line,
					Msg: fmt.Sprintf("node %q: unknown workflow %q", n.Name, n.Workflow)}}})
			}
		}
	}
	return errs
}
