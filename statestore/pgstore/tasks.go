package pgstore

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// lockRunsSQL locks the runs of a group's completions, in key order, for
// the statement after it (completeTasksSQL). It is a statement of its own
// so that the next one, under READ COMMITTED, reads with a snapshot taken
// once the locks are held: every write that may ready a node of a run
// holds the run's lock, so that statement sees all of them (a dependent's
// other needs, journaled by another host a moment before) and not a
// state from before it waited.
const lockRunsSQL = "SELECT 1 FROM runs WHERE id = ANY ($1::bytea[]) ORDER BY id FOR NO KEY UPDATE"

// completeTasksSQL journals a group's completions and the run ends they
// carry in one statement, after lockRunsSQL in the same transaction. It
// returns one row per completion, its 1-based index first, in no order:
//
//   - c: completion i of run c_runs[i], node c_nodes[i], fenced by the claim
//     (c_owners[i], c_tokens[i]), with body c_bodies[i];
//   - f: the completions whose claim holds (task locked in key order, then
//     deleted); s: those whose result was stored (not journaled before);
//   - e: the run ends, end k written by completion e_comp[k] only when it
//     is stored and its run is still at version e_rev[k], created at
//     e_created[k];
//   - d: the dependents of stored completions, dependent j of completion
//     d_comp[j] being d_nodes[j] with d_blocks[j] attempts; unmet those with
//     a need n_nodes[k] (of dependent n_dep[k]) not journaled; ready the
//     rest with no result or task yet, each counted once;
//   - att, q, ins: each ready dependent's attempts reserved and its task
//     queued; completion i keeps its first one, claimed for c_owners[i]
//     and leased for c_lease[i] microseconds, when c_keep[i].
//
// Code 0 is stored, 1 journaled already (the task is removed), 4 fenced
// (nothing written). A statement's parts do not see each other's writes,
// so the readiness checks count the group's stored completions (s) beside
// node_results. Tasks deleted here are still visible to ready, which then
// queues nothing for a node completed in this group, as it must not.
//
// The statement runs on the committers' sessions (Open), which plan it once
// and without sequential scans or hash and merge joins: whatever the
// tables' size or statistics, it reads the rows of its group and no
// others.
const completeTasksSQL = `WITH c AS (
	SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[])
		WITH ORDINALITY AS c (run_id, node, owner, token, i)
), l AS (
	SELECT t.run_id, t.node, c.i FROM tasks t
	JOIN c ON t.run_id = c.run_id AND t.node = c.node AND t.owner = c.owner AND t.token = c.token
	WHERE t.lease_until > clock_timestamp()
	ORDER BY t.run_id, t.node FOR UPDATE OF t
), f AS (
	DELETE FROM tasks t USING l WHERE t.run_id = l.run_id AND t.node = l.node
	RETURNING l.i, l.run_id, l.node
), res AS (
	INSERT INTO node_results (run_id, node, body)
	SELECT f.run_id, f.node, ($5::bytea[])[f.i] FROM f ORDER BY 1, 2
	ON CONFLICT DO NOTHING
	RETURNING run_id, node
), s AS MATERIALIZED (
	SELECT f.i, f.run_id, f.node FROM f JOIN res ON res.run_id = f.run_id AND res.node = f.node
), e AS (
	UPDATE runs r SET status = ($17::text[])[k], finished_ns = ($18::bigint[])[k],
		body = ($19::bytea[])[k], rev = r.rev + 1
	FROM generate_subscripts($14::int[], 1) AS k JOIN s ON s.i = ($14::int[])[k]
	WHERE r.id = s.run_id AND r.rev = ($15::bigint[])[k] AND r.created_ns = ($16::bigint[])[k]
	RETURNING s.i
), d AS (
	SELECT j, s.i AS ci, s.run_id, ($9::bytea[])[j] AS node, ($10::int[])[j] AS block
	FROM generate_subscripts($9::bytea[], 1) AS j JOIN s ON s.i = ($8::int[])[j]
), unmet AS MATERIALIZED (
	SELECT DISTINCT d.j FROM generate_subscripts($11::int[], 1) AS k JOIN d ON d.j = ($11::int[])[k]
	WHERE NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = d.run_id AND r.node = ($12::bytea[])[k])
		AND NOT EXISTS (SELECT 1 FROM s WHERE s.run_id = d.run_id AND s.node = ($12::bytea[])[k])
), ready AS (
	SELECT DISTINCT ON (d.run_id, d.node) d.* FROM d
	WHERE NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = d.run_id AND r.node = d.node)
		AND NOT EXISTS (SELECT 1 FROM s WHERE s.run_id = d.run_id AND s.node = d.node)
		AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = d.run_id AND t.node = d.node)
		AND NOT EXISTS (SELECT 1 FROM unmet WHERE unmet.j = d.j)
	ORDER BY d.run_id, d.node, d.j
), att AS (
	INSERT INTO node_attempts AS a (run_id, node, attempt, started_ns)
	SELECT run_id, node, block, $13::bigint FROM ready ORDER BY run_id, node
	ON CONFLICT (run_id, node) DO UPDATE
		SET attempt = a.attempt + EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
	RETURNING a.run_id, a.node, a.attempt
), q AS (
	SELECT ready.ci, ready.run_id, ready.node, att.attempt - ready.block + 1 AS first,
		($6::boolean[])[ready.ci] AND row_number() OVER (PARTITION BY ready.ci ORDER BY ready.j) = 1 AS keep
	FROM ready JOIN att ON att.run_id = ready.run_id AND att.node = ready.node
), ins AS (
	INSERT INTO tasks (run_id, node, first_attempt, owner, token, claims, lease_until)
	SELECT run_id, node, first,
		CASE WHEN keep THEN ($3::bytea[])[ci] END,
		CASE WHEN keep THEN nextval('task_tokens') ELSE 0 END,
		CASE WHEN keep THEN 1 ELSE 0 END,
		CASE WHEN keep THEN now() + ($7::bigint[])[ci] * interval '1 microsecond' END
	FROM q ORDER BY ci, run_id, node
	RETURNING run_id, node, token, lease_until
)
SELECT c.i::int, CASE WHEN s.i IS NOT NULL THEN 0 WHEN f.i IS NOT NULL THEN 1 ELSE 4 END,
	k.node, k.token, k.first, k.lease_until, e.i IS NOT NULL
FROM c
LEFT JOIN f ON f.i = c.i
LEFT JOIN s ON s.i = c.i
LEFT JOIN e ON e.i = c.i
LEFT JOIN (
	SELECT q.ci, q.node, ins.token, q.first::int AS first, ins.lease_until
	FROM q JOIN ins ON ins.run_id = q.run_id AND ins.node = q.node
	WHERE q.keep
) k ON k.ci = c.i`

// tasksCall is the arguments of one completeTasksSQL statement: the
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
	b.Queue(lockRunsSQL, c.runs)
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

// scan reads the answer to lockRunsSQL from br, then one row per
// completion into results, at the positions of the call's ops in ops'
// order (index[o]).
func (c *tasksCall) scan(br pgx.BatchResults, results []error, index map[*op]int) error {
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	seen := make([]bool, len(c.ops))
	var i int32
	var code int
	var node []byte
	var token *int64
	var first *int32
	var until *time.Time
	var ended bool
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&i, &code, &node, &token, &first, &until, &ended}, func() error {
		if i < 1 || int(i) > len(c.ops) || seen[i-1] {
			return fmt.Errorf("%w: a group's completion returned row %d of %d twice or out of range", errServer, i, len(c.ops))
		}
		seen[i-1] = true
		n++
		o := c.ops[i-1]
		if o.task.end != nil {
			o.task.end.done = ended
		}
		results[index[o]] = o.task.result(code, node, token, first, until)
		return nil
	})
	if err != nil {
		return err
	}
	if n != len(c.ops) {
		return fmt.Errorf("%w: a group's completion returned %d rows for %d completions", errServer, n, len(c.ops))
	}
	return nil
}

// result turns one row of completeTasksSQL into the op's result,
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
	return fmt.Errorf("%w: a group's completion returned code %d", errServer, code)
}
