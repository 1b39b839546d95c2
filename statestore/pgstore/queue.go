package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

var _ statestore.Queue = (*Store)(nil)

// readyArgs are ReadyNodes as the arrays bulkhead_queue_nodes takes: the
// needs of every node one after the other, nneeds[i] of them for node i.
type readyArgs struct {
	nodes  [][]byte
	blocks []int32
	nneeds []int32
	needs  [][]byte
}

func newReadyArgs(nodes []statestore.ReadyNode) readyArgs {
	a := readyArgs{
		nodes:  make([][]byte, 0, len(nodes)),
		blocks: make([]int32, 0, len(nodes)),
		nneeds: make([]int32, 0, len(nodes)),
		needs:  [][]byte{},
	}
	for _, n := range nodes {
		a.nodes = append(a.nodes, []byte(n.Node))
		a.blocks = append(a.blocks, int32(n.Block))
		a.nneeds = append(a.nneeds, int32(len(n.Needs)))
		for _, need := range n.Needs {
			a.needs = append(a.needs, []byte(need))
		}
	}
	return a
}

// checkBlocks refuses attempt blocks the int columns cannot hold.
func checkBlocks(nodes []statestore.ReadyNode) error {
	for _, n := range nodes {
		if n.Block > 1<<30 {
			return fmt.Errorf("%w: node %s: attempt block %d too large", statestore.ErrInvalid, n.Node, n.Block)
		}
	}
	return nil
}

// micros is d in whole microseconds, the resolution of timestamptz, at
// least 1.
func micros(d time.Duration) int64 {
	return max(int64(d/time.Microsecond), 1)
}

// fenceCond is the condition that the fence in $1..$4 holds: the task's
// claim is (owner, token) and its lease has not ended on the database's
// clock.
const fenceCond = `run_id = $1 AND node = $2 AND owner = $3 AND token = $4 AND lease_until > clock_timestamp()`

func fenceArgs(f statestore.Fence) []any {
	return []any{[]byte(f.RunID), []byte(f.Node), []byte(f.Owner), f.Token}
}

// SubmitRun implements statestore.Queue: one statement (submitSQL)
// creates the run and queues its roots.
func (s *Store) SubmitRun(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode) (statestore.Run, bool, error) {
	out, created, _, _, err := s.submit(ctx, r, roots, "", 0)
	return out, created, err
}

var _ statestore.SubmitClaimer = (*Store)(nil)

// SubmitRunClaim implements statestore.SubmitClaimer: one statement
// (submitSQL) creates the run, queues its roots and claims the first one.
func (s *Store) SubmitRunClaim(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode, owner string, lease time.Duration) (statestore.Run, bool, statestore.Task, bool, error) {
	if err := rules.CheckClaim(owner, 1, lease); err != nil {
		return statestore.Run{}, false, statestore.Task{}, false, err
	}
	return s.submit(ctx, r, roots, owner, lease)
}

// submitSQL creates run $1 (status $2, created_ns $3, finished_ns $4,
// body $5) and queues its roots (submit refuses a root with needs): node
// $6[i] with $7[i] attempts reserved, started at $8. With an owner ($9)
// the first root is claimed for it, leased for $10 microseconds. A run
// that exists already is left as it is and nothing is queued. It answers
// one row: whether the run was created, and the claimed root's node,
// token and lease.
//
// A run just created has no results, tasks or attempts, so no root is held
// back; an attempt row left under its ID (a host of an earlier version
// recording an attempt of a run being removed) is overwritten, so the run
// starts at attempt one. The statement runs on the committers' sessions,
// planned once (Open).
const submitSQL = `WITH run AS (
	INSERT INTO runs (id, status, created_ns, finished_ns, body) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (id) DO NOTHING
	RETURNING id
), r AS MATERIALIZED (
	SELECT ($6::bytea[])[i] AS node, ($7::int[])[i] AS block, i,
		$9::bytea IS NOT NULL AND row_number() OVER (ORDER BY i) = 1 AS keep
	FROM run, generate_subscripts($6::bytea[], 1) AS i
), att AS (
	INSERT INTO node_attempts AS a (run_id, node, attempt, started_ns)
	SELECT $1, node, block, $8::bigint FROM r ORDER BY node
	ON CONFLICT (run_id, node) DO UPDATE
		SET attempt = EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
), ins AS (
	INSERT INTO tasks (run_id, node, first_attempt, owner, token, claims, lease_until)
	SELECT $1, node, 1,
		CASE WHEN keep THEN $9 END,
		CASE WHEN keep THEN nextval('task_tokens') ELSE 0 END,
		CASE WHEN keep THEN 1 ELSE 0 END,
		CASE WHEN keep THEN now() + $10::bigint * interval '1 microsecond' END
	FROM r ORDER BY i
	RETURNING node, token, lease_until, owner
)
SELECT EXISTS (SELECT 1 FROM run), k.node, k.token, k.lease_until
FROM (SELECT 1) AS one LEFT JOIN ins AS k ON k.owner IS NOT NULL`

// submit is SubmitRun, and with an owner SubmitRunClaim.
func (s *Store) submit(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode, owner string, lease time.Duration) (statestore.Run, bool, statestore.Task, bool, error) {
	var t statestore.Task
	if err := rules.CheckReady(r.ID, roots); err != nil {
		return statestore.Run{}, false, t, false, err
	}
	if err := checkBlocks(roots); err != nil {
		return statestore.Run{}, false, t, false, err
	}
	for _, n := range roots {
		if len(n.Needs) > 0 {
			return statestore.Run{}, false, t, false, fmt.Errorf("%w: root %s has needs", statestore.ErrInvalid, n.Node)
		}
	}
	now := s.opts.now()
	r, err := rules.PrepareCreate(r, now)
	if err != nil {
		return statestore.Run{}, false, t, false, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return statestore.Run{}, false, t, false, err
	}
	a := newReadyArgs(roots)
	var out statestore.Run
	var created, claimed bool
	var ownerArg []byte // NULL: claim nothing
	leaseArg := int64(0)
	if owner != "" {
		ownerArg, leaseArg = []byte(owner), micros(lease)
	}
	call := &callOp{
		sql: submitSQL,
		args: []any{[]byte(r.ID), string(r.Status), r.CreatedAt.UnixNano(), finishedNS(r), body,
			a.nodes, a.blocks, now.UnixNano(), ownerArg, leaseArg},
		scan: func(row pgx.Row) (error, error) {
			var node []byte
			var token *int64
			var until *time.Time
			t, claimed = statestore.Task{}, false // a group retried member by member scans again
			if err := row.Scan(&created, &node, &token, &until); err != nil {
				return nil, err
			}
			if owner != "" && node != nil && token != nil && until != nil {
				t = statestore.Task{RunID: r.ID, Node: string(node), Owner: owner, Token: *token,
					Claims: 1, First: 1, LeaseUntil: *until}
				claimed = true
			}
			return nil, nil
		},
	}
	// The run and its roots commit with the committer's next group.
	err = s.group(ctx, r.ID, call)
	if err == nil && created {
		out = r
		if !r.Status.Finished() {
			s.runs.put(r.ID, body, 1)
		}
	}
	if err == nil && !created {
		err = s.do(ctx, func(ctx context.Context) error {
			old, _, err := getRun(ctx, s.pool, r.ID)
			if err != nil {
				return err
			}
			out = old
			if !rules.SameRun(old, r) {
				return rules.ConflictError(old, r)
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, statestore.ErrConflict) {
		return statestore.Run{}, false, statestore.Task{}, false, err
	}
	if err != nil || !created {
		claimed = false
	}
	return out.Clone(), created, t, claimed, err
}

// EnqueueNodes implements statestore.Queue: bulkhead_enqueue_nodes, under
// the run's row lock.
func (s *Store) EnqueueNodes(ctx context.Context, runID string, nodes []statestore.ReadyNode) error {
	if err := rules.CheckReady(runID, nodes); err != nil {
		return err
	}
	if err := checkBlocks(nodes); err != nil {
		return err
	}
	a := newReadyArgs(nodes)
	now := s.opts.now()
	return s.do(ctx, func(ctx context.Context) error {
		var found bool
		err := s.pool.QueryRow(ctx, "SELECT bulkhead_enqueue_nodes($1, $2, $3, $4, $5, $6)",
			[]byte(runID), a.nodes, a.blocks, a.nneeds, a.needs, now.UnixNano()).Scan(&found)
		if err != nil {
			return err
		}
		if !found {
			return rules.RunNotFound(runID)
		}
		return nil
	})
}

// claimSQL claims up to $2 tasks for $1, leased for $3 µs: first tasks
// whose lease ended (their owner stopped heartbeating; they waited
// longest), then queued tasks that are due, each oldest first (the due
// ones by when they became claimable, through tasks_due, so sleeping
// tasks are not read). SKIP LOCKED
// passes over rows another claim or write holds, so concurrent claims
// never wait for each other and never take one task twice. Times are the
// database's. %[1]s restricts the tasks (claimRunSQL: to the run $4).
const claimSQL = `WITH expired AS MATERIALIZED (
	SELECT run_id, node, seq FROM tasks
	WHERE owner IS NOT NULL AND lease_until <= now() %[1]s
	ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
), due AS MATERIALIZED (
	SELECT run_id, node, seq FROM tasks
	WHERE owner IS NULL AND ready_at <= now() %[1]s
	ORDER BY ready_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED
), picked AS MATERIALIZED (
	SELECT run_id, node, pass, seq FROM (
		SELECT 0 AS pass, * FROM expired UNION ALL SELECT 1 AS pass, * FROM due
	) c ORDER BY pass, seq LIMIT $2
)
UPDATE tasks t SET owner = $1, token = nextval('task_tokens'), claims = t.claims + 1,
	lease_until = now() + $3 * interval '1 microsecond'
FROM picked WHERE t.run_id = picked.run_id AND t.node = picked.node
RETURNING t.run_id, t.node, t.token, t.claims, t.first_attempt, t.lease_until, picked.pass, picked.seq`

var (
	claimAnySQL = fmt.Sprintf(claimSQL, "")
	claimRunSQL = fmt.Sprintf(claimSQL, "AND run_id = $4")
)

// ClaimTasks implements statestore.Queue in one statement (claimSQL).
func (s *Store) ClaimTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]statestore.Task, error) {
	return s.claim(ctx, owner, "", limit, lease)
}

// ClaimRunTasks implements statestore.Queue: ClaimTasks through the
// primary key's entries of the run.
func (s *Store) ClaimRunTasks(ctx context.Context, owner, runID string, limit int, lease time.Duration) ([]statestore.Task, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	return s.claim(ctx, owner, runID, limit, lease)
}

// claim claims tasks of run runID, or of every run when it is "".
func (s *Store) claim(ctx context.Context, owner, runID string, limit int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, limit, lease); err != nil {
		return nil, err
	}
	q, args := claimAnySQL, []any{[]byte(owner), limit, micros(lease)}
	if runID != "" {
		q, args = claimRunSQL, append(args, []byte(runID))
	}
	return s.claimWith(ctx, owner, q, args)
}

// claimWith runs claim statement q, which returns the columns claimSQL
// does, and returns its tasks in claim order.
func (s *Store) claimWith(ctx context.Context, owner, q string, args []any) ([]statestore.Task, error) {
	type claimed struct {
		task statestore.Task
		pass int
		seq  int64
	}
	var out []claimed
	err := s.do(ctx, func(ctx context.Context) error {
		return retryDeadlock(ctx, func() error {
			rows, err := s.pool.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
				var c claimed
				var run, node []byte
				err := row.Scan(&run, &node, &c.task.Token, &c.task.Claims, &c.task.First, &c.task.LeaseUntil, &c.pass, &c.seq)
				c.task.RunID, c.task.Node, c.task.Owner = string(run), string(node), owner
				return c, err
			})
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b claimed) int {
		return cmp.Or(cmp.Compare(a.pass, b.pass), cmp.Compare(a.seq, b.seq))
	})
	tasks := make([]statestore.Task, len(out))
	for i, c := range out {
		tasks[i] = c.task
	}
	return tasks, nil
}

// ExtendLeases implements statestore.Queue: one statement extends the
// claims that hold. It does not wait for a task row another transaction
// holds locked (a completion of the claim in progress, a claim or drop of
// the task): that lease is extended by the next heartbeat, and the claim
// counts as holding while the row, as the statement's snapshot has it,
// says so. Waiting would hold the rows locked before it meanwhile, and
// the completions of those would wait in turn: with 16 runs in flight a
// heartbeat took up to 100 ms, and the completions behind it as long.
func (s *Store) ExtendLeases(ctx context.Context, owner string, fences []statestore.Fence, lease time.Duration) ([]statestore.Fence, error) {
	if err := rules.CheckClaim(owner, 1, lease); err != nil {
		return nil, err
	}
	var lost []statestore.Fence
	var runs, nodes [][]byte
	var tokens []int64
	for _, f := range fences {
		if f.Owner != owner || rules.CheckFence(f) != nil {
			lost = append(lost, f)
			continue
		}
		runs, nodes, tokens = append(runs, []byte(f.RunID)), append(nodes, []byte(f.Node)), append(tokens, f.Token)
	}
	if len(runs) == 0 {
		return lost, nil
	}
	type key struct {
		run, node string
		token     int64
	}
	held := map[key]bool{}
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `WITH h AS MATERIALIZED (
	SELECT h.run_id, h.node, h.token FROM tasks h
	JOIN unnest($2::bytea[], $3::bytea[], $4::bigint[]) AS f (run_id, node, token)
		ON h.run_id = f.run_id AND h.node = f.node AND h.token = f.token
	WHERE h.owner = $1 AND h.lease_until > clock_timestamp()
), l AS (
	SELECT t.run_id, t.node FROM tasks t JOIN h ON t.run_id = h.run_id AND t.node = h.node
	WHERE t.owner = $1 AND t.token = h.token AND t.lease_until > clock_timestamp()
	ORDER BY t.run_id, t.node FOR NO KEY UPDATE OF t SKIP LOCKED
), u AS (
	UPDATE tasks t SET lease_until = now() + $5 * interval '1 microsecond'
	FROM l WHERE t.run_id = l.run_id AND t.node = l.node
	RETURNING 1
)
SELECT run_id, node, token FROM h`, []byte(owner), runs, nodes, tokens, micros(lease))
		if err != nil {
			return err
		}
		var run, node []byte
		var token int64
		_, err = pgx.ForEachRow(rows, []any{&run, &node, &token}, func() error {
			held[key{string(run), string(node), token}] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, f := range fences {
		if f.Owner == owner && rules.CheckFence(f) == nil && !held[key{f.RunID, f.Node, f.Token}] {
			lost = append(lost, f)
		}
	}
	return lost, nil
}

// ReleaseTask implements statestore.Queue: the task is queued again behind
// every queued task, claimable from the database's now plus delay.
func (s *Store) ReleaseTask(ctx context.Context, f statestore.Fence, delay time.Duration) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	if delay < 0 {
		delay = 0
	}
	return s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `UPDATE tasks SET owner = NULL, lease_until = NULL, seq = DEFAULT,
	ready_at = now() + $5 * interval '1 microsecond'
WHERE `+fenceCond, append(fenceArgs(f), int64(delay/time.Microsecond))...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return rules.Fenced(f)
		}
		return nil
	})
}

// WakeTask implements statestore.Queue.
func (s *Store) WakeTask(ctx context.Context, runID, node string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	if err := statestore.CheckID("node", node); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `UPDATE tasks SET ready_at = now()
WHERE run_id = $1 AND node = $2 AND owner IS NULL AND ready_at > now()`, []byte(runID), []byte(node))
		return err
	})
}

const completeTaskSQL = `SELECT code, k_node, k_token, k_first, k_lease
FROM bulkhead_complete_task($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// args are bulkhead_complete_task's arguments for t, the completion of a
// group too small for the set-based statements (setGroupMin).
func (t *taskOp) args(body []byte) []any {
	f := t.c.Fence
	ready := newReadyArgs(t.c.Next)
	return []any{[]byte(f.RunID), []byte(f.Node), []byte(f.Owner), f.Token, body,
		ready.nodes, ready.blocks, ready.nneeds, ready.needs, t.now, t.c.Keep, micros(t.c.Lease)}
}

// scan reads bulkhead_complete_task's answer: the op's result, or the
// error that failed the call.
func (t *taskOp) scan(row pgx.Row) (result, err error) {
	var code int
	var node []byte
	var token *int64
	var first *int32
	var until *time.Time
	if err := row.Scan(&code, &node, &token, &first, &until); err != nil {
		return nil, err
	}
	return t.result(code, node, token, first, until), nil
}

// taskOp is the fenced part of a CompleteTask handed to the committer.
type taskOp struct {
	c   statestore.Completion
	now int64
	end *endOp
	// Set by the committer with a nil result.
	next statestore.Task
	kept bool
}

// endOp is the run's end a CompleteTaskEnd writes with its completion.
type endOp struct {
	rev      int64 // the version it replaces
	created  int64
	run      statestore.Run
	finished *int64
	body     []byte
	done     bool // set by the committer: the end was written
}

// CompleteTask implements statestore.Queue. The committer journals the
// completions of its group with the set-based statements (completeTasksSQL),
// in the transaction of the group, with CompleteNode's.
func (s *Store) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	o, err := s.taskOp(ctx, c)
	if err != nil {
		return statestore.Task{}, false, err
	}
	err = s.commitTask(ctx, o)
	if err != nil {
		return statestore.Task{}, false, err
	}
	return o.task.next, o.task.kept, nil
}

// commitTask commits o, a completion: with the committer's next group, or
// in a transaction of its own when group commit is off.
func (s *Store) commitTask(ctx context.Context, o *op) error {
	if s.opts.maxBatch > 1 {
		return s.enqueue(ctx, o)
	}
	return s.do(ctx, func(ctx context.Context) error {
		o.ctx = ctx
		results, err := s.runGroup([]*op{o})
		if err != nil {
			return err
		}
		return results[0]
	})
}

// CompleteTaskEnd implements statestore.EndingCompleter: the run's end,
// applied to the version of the run this store last wrote or read, is
// written in the completion's transaction, on the condition that the
// completion was stored and that version is still the run's. Without a
// version at hand (the run was not written or read here lately) it is
// CompleteTask.
func (s *Store) CompleteTaskEnd(ctx context.Context, c statestore.Completion, end func(*statestore.Run) error) (statestore.Run, bool, error) {
	if len(c.Next) > 0 {
		_, _, err := s.CompleteTask(ctx, c)
		return statestore.Run{}, false, err
	}
	o, err := s.taskOp(ctx, c)
	if err != nil {
		return statestore.Run{}, false, err
	}
	s.addEnd(o, end)
	err = s.commitTask(ctx, o)
	if err != nil {
		return statestore.Run{}, false, err
	}
	return s.ended(o)
}

// addEnd gives o, a completion, the run's end: end applied to the
// version of the run this store last wrote or read, if it holds one.
func (s *Store) addEnd(o *op, end func(*statestore.Run) error) {
	id := o.task.c.Fence.RunID
	cached, ok := s.runs.get(id)
	if !ok {
		return
	}
	var old statestore.Run
	if err := decode("run "+id, cached.body, &old); err != nil {
		return
	}
	// The run returned is as a read returns it: no monotonic clock
	// reading, UTC.
	r, err := rules.ApplyUpdate(old, end, s.opts.now().Round(0).UTC())
	if err != nil {
		return
	}
	body, err := json.Marshal(r)
	if err != nil {
		return
	}
	o.task.end = &endOp{rev: cached.rev, created: old.CreatedAt.UnixNano(), run: r,
		finished: finishedNS(r), body: body}
}

// ended returns the run as o, a stored completion, ended it, or false
// when it did not, and keeps the store's version of the run in step.
func (s *Store) ended(o *op) (statestore.Run, bool, error) {
	id := o.task.c.Fence.RunID
	e := o.task.end
	if e == nil || !e.done {
		s.runs.drop(id)
		return statestore.Run{}, false, nil
	}
	if e.run.Status.Finished() {
		s.runs.drop(id)
	} else {
		s.runs.put(id, e.body, e.rev+1)
	}
	return e.run.Clone(), true, nil
}

// taskOp checks c and returns its op for the committer.
func (s *Store) taskOp(ctx context.Context, c statestore.Completion) (*op, error) {
	now := s.opts.now()
	c, err := rules.CheckCompletion(c, now)
	if err != nil {
		return nil, err
	}
	if err := checkBlocks(c.Next); err != nil {
		return nil, err
	}
	if !c.Keep {
		c.Lease = time.Microsecond
	}
	body, err := json.Marshal(c.Result)
	if err != nil {
		return nil, err
	}
	t := &taskOp{c: c, now: now.UnixNano()}
	return &op{ctx: ctx, res: c.Result, body: body, task: t, done: make(chan error, 1)}, nil
}

// DropTasks implements statestore.Queue. It takes the run's row lock
// first, as completions do, so it waits for the run's completions in
// progress instead of deadlocking with them, then locks the tasks in key
// order, as ExtendLeases does.
func (s *Store) DropTasks(ctx context.Context, runID string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		return retryDeadlock(ctx, func() error { return s.dropTasks(ctx, runID) })
	})
}

// dropTasks deletes the tasks of a run in one implicit transaction.
func (s *Store) dropTasks(ctx context.Context, runID string) error {
	b := &pgx.Batch{}
	b.Queue("SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE", []byte(runID))
	b.Queue(`DELETE FROM tasks WHERE (run_id, node) IN (
	SELECT run_id, node FROM tasks WHERE run_id = $1 ORDER BY node FOR UPDATE)`, []byte(runID))
	return s.pool.SendBatch(ctx, b).Close()
}

// CheckFence implements statestore.Queue.
func (s *Store) CheckFence(ctx context.Context, f statestore.Fence) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		var holds bool
		if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tasks WHERE "+fenceCond+")", fenceArgs(f)...).Scan(&holds); err != nil {
			return err
		}
		if !holds {
			return rules.Fenced(f)
		}
		return nil
	})
}

// UnqueuedRuns implements statestore.Queue: a keyset page on the partial
// index runs_unfinished_id, each run checked against tasks' primary key.
func (s *Store) UnqueuedRuns(ctx context.Context, after string, limit int) ([]string, string, error) {
	limit, err := rules.Limit(limit)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	err = s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT r.id FROM runs r
WHERE r.status IN ('pending', 'running') AND r.id > $1
	AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.id)
ORDER BY r.id LIMIT $2`, []byte(after), limit+1)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
			var id []byte
			err := row.Scan(&id)
			return string(id), err
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if len(ids) > limit {
		ids = ids[:limit]
		return ids, ids[limit-1], nil
	}
	return ids, "", nil
}
