package pgstore

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// completeTasksSQL journals a group's completions and the run ends they
// carry in one call (bulkhead_complete_tasks, migration 9), one row per
// completion.
const completeTasksSQL = `SELECT r_code, r_node, r_token, r_first, r_lease, r_ended
FROM bulkhead_complete_tasks($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
	$14, $15, $16, $17, $18, $19)`

// tasksCall is the arguments of one bulkhead_complete_tasks call: the
// completions as parallel arrays, their dependents and the dependents'
// needs flattened, each pointing back at its completion or dependent
// (1-based, as SQL arrays are).
type tasksCall struct {
	runs, nodes, owners, bodies [][]byte
	tokens, leases              []int64
	keep                        []bool
	depComp, depBlocks          []int32
	depNodes                    [][]byte
	needDep                     []int32
	needNodes                   [][]byte
	now                         int64
	// The run ends: end k is written by completion endComp[k].
	endComp            []int32
	endRev, endCreated []int64
	endStatus          []string
	endFinished        []*int64
	endBodies          [][]byte
	ops                []*op
}

// add appends o, a CompleteTask, to the call.
func (c *tasksCall) add(o *op) {
	t := o.task
	f := t.c.Fence
	c.ops = append(c.ops, o)
	ci := int32(len(c.ops))
	c.runs = append(c.runs, []byte(f.RunID))
	c.nodes = append(c.nodes, []byte(f.Node))
	c.owners = append(c.owners, []byte(f.Owner))
	c.tokens = append(c.tokens, f.Token)
	c.bodies = append(c.bodies, o.body)
	c.keep = append(c.keep, t.c.Keep)
	c.leases = append(c.leases, micros(t.c.Lease))
	// Completions created in one group are a few milliseconds apart; the
	// attempts they start are stamped with the latest.
	c.now = max(c.now, t.now)
	if e := t.end; e != nil {
		c.endComp = append(c.endComp, ci)
		c.endRev = append(c.endRev, e.rev)
		c.endCreated = append(c.endCreated, e.created)
		c.endStatus = append(c.endStatus, string(e.run.Status))
		c.endFinished = append(c.endFinished, e.finished)
		c.endBodies = append(c.endBodies, e.body)
	}
	for _, n := range t.c.Next {
		c.depComp = append(c.depComp, ci)
		c.depNodes = append(c.depNodes, []byte(n.Node))
		c.depBlocks = append(c.depBlocks, int32(n.Block))
		dj := int32(len(c.depNodes))
		for _, need := range n.Needs {
			// The completing node is journaled when the completion is:
			// a chain's dependent, whose only need it is, is not checked.
			if need == f.Node {
				continue
			}
			c.needDep = append(c.needDep, dj)
			c.needNodes = append(c.needNodes, []byte(need))
		}
	}
}

func (c *tasksCall) queue(b *pgx.Batch) {
	b.Queue(completeTasksSQL, c.runs, c.nodes, c.owners, c.tokens, c.bodies, c.keep, c.leases,
		nonNil(c.depComp), nonNil(c.depNodes), nonNil(c.depBlocks), nonNil(c.needDep), nonNil(c.needNodes), c.now,
		nonNil(c.endComp), nonNil(c.endRev), nonNil(c.endCreated), nonNil(c.endStatus), nonNil(c.endFinished), nonNil(c.endBodies))
}

// nonNil is s, or an empty slice when s is nil: pgx sends a nil slice as
// NULL, and the function takes empty arrays.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// scan reads one row per completion from rows into results, at the
// positions of the call's ops in ops' order (index[o]).
func (c *tasksCall) scan(rows pgx.Rows, results []error, index map[*op]int) error {
	i := 0
	var code int
	var node []byte
	var token *int64
	var first *int32
	var until *time.Time
	var ended bool
	_, err := pgx.ForEachRow(rows, []any{&code, &node, &token, &first, &until, &ended}, func() error {
		if i >= len(c.ops) {
			return fmt.Errorf("%w: bulkhead_complete_tasks returned more than %d rows", errServer, len(c.ops))
		}
		o := c.ops[i]
		i++
		if o.task.end != nil {
			o.task.end.done = ended
		}
		results[index[o]] = o.task.result(code, node, token, first, until)
		return nil
	})
	if err != nil {
		return err
	}
	if i != len(c.ops) {
		return fmt.Errorf("%w: bulkhead_complete_tasks returned %d rows for %d completions", errServer, i, len(c.ops))
	}
	return nil
}

// result turns one row of bulkhead_complete_tasks into the op's result,
// setting t.next and t.kept on success.
func (t *taskOp) result(code int, node []byte, token *int64, first *int32, until *time.Time) error {
	f := t.c.Fence
	switch code {
	case 0:
		t.next, t.kept = statestore.Task{}, false
		if node != nil && token != nil && first != nil && until != nil {
			t.next = statestore.Task{RunID: f.RunID, Node: string(node), Owner: f.Owner, Token: *token,
				Claims: 1, First: int(*first), LeaseUntil: *until}
			t.kept = true
		}
		return nil
	case 1:
		return rules.CompletedConflict(f.RunID, f.Node)
	case 3, 4:
		return rules.Fenced(f)
	}
	return fmt.Errorf("%w: bulkhead_complete_tasks returned code %d", errServer, code)
}
