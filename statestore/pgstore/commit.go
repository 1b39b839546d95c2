package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// op is one CompleteNode, or with task one CompleteTask (the group's
// CompleteTasks commit in one call, tasksCall), or with call
// another write of one statement, handed to the committer. res.RunID and
// res.Node order the group (a call's Node is "").
type op struct {
	ctx  context.Context
	res  statestore.NodeResult
	next []statestore.NodeAttempt
	task *taskOp
	call *callOp
	body []byte
	done chan error
}

// callOp is a write of one statement that commits with a group: a run's
// submit or update. scan reads its answer and returns the op's result, or
// the error that fails the group.
type callOp struct {
	sql  string
	args []any
	scan func(pgx.Row) (result, err error)
}

// group runs c in the next group's transaction when group commit is on,
// else in a transaction of its own, and returns its result. The caller
// holds no call context (enqueue checks that the store is open).
func (s *Store) group(ctx context.Context, runID string, c *callOp) error {
	o := &op{ctx: ctx, res: statestore.NodeResult{RunID: runID}, call: c, done: make(chan error, 1)}
	if s.opts.maxBatch == 1 {
		return s.do(ctx, func(ctx context.Context) error {
			o.ctx = ctx
			results, err := s.runGroup([]*op{o})
			if err != nil {
				return err
			}
			return results[0]
		})
	}
	return s.enqueue(ctx, o)
}

const completeSQL = "SELECT code, idx, last FROM bulkhead_complete_node($1, $2, $3, $4, $5, $6)"

// setGroupMin is the fewest completions of claimed tasks a group commits
// with the set-based statements (lockRunsSQL, completeTasksSQL); fewer
// are a call of bulkhead_complete_task each, except a completion that
// ends its run, which is always written by the set-based statements (the
// only ones that write run ends). Those run the same plan whatever the
// group's size: with 16 runs in flight (bench/dbos, pg_stat_statements) a
// group of about 8 took 0.5-0.75 ms of server time against 0.23-0.30 ms
// for each single call. A lone completion through them was slower
// (10-step p50 6.0-7.0 ms against 5.2-6.5 ms): two statements where the
// call is one.
const setGroupMin = 2

// queue adds o's call to b.
func (o *op) queue(b *pgx.Batch) {
	if o.call != nil {
		b.Queue(o.call.sql, o.call.args...)
		return
	}
	if o.task != nil {
		b.Queue(completeTaskSQL, o.task.args(o.body)...)
		return
	}
	b.Queue(completeSQL, o.args()...)
}

// scan reads the answer to o's call: the op's result, or the error that
// failed the call.
func (o *op) scan(row pgx.Row) (result, err error) {
	if o.call != nil {
		return o.call.scan(row)
	}
	if o.task != nil {
		return o.task.scan(row)
	}
	var code, idx, last int
	if err := row.Scan(&code, &idx, &last); err != nil {
		return nil, err
	}
	return o.result(code, idx, last), nil
}

func (o *op) args() []any {
	nodes := make([][]byte, len(o.next))
	attempts := make([]int32, len(o.next))
	started := make([]int64, len(o.next))
	for i, a := range o.next {
		nodes[i], attempts[i], started[i] = []byte(a.Node), int32(a.Attempt), a.StartedAt.UnixNano()
	}
	return []any{[]byte(o.res.RunID), []byte(o.res.Node), o.body, nodes, attempts, started}
}

// result turns bulkhead_complete_node's answer into the op's error.
func (o *op) result(code, idx, last int) error {
	switch code {
	case 0:
		return nil
	case 1:
		return rules.CompletedConflict(o.res.RunID, o.res.Node)
	case 2:
		if idx >= 1 && idx <= len(o.next) {
			return rules.AttemptConflict(o.next[idx-1], last)
		}
		return statestore.ErrConflict
	case 3:
		return rules.RunNotFound(o.res.RunID)
	}
	return fmt.Errorf("%w: bulkhead_complete_node returned code %d", errServer, code)
}

// enqueue hands o to the committer and waits for its group to commit.
func (s *Store) enqueue(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return statestore.ErrClosed
	}
	select {
	case s.queue <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is a committer: it takes every queued op (up to maxBatch),
// gathers more while another group is in flight (gather), and commits
// them in one transaction. It returns when Close closed the
// queue and every op in it is answered. WithCommitters of them run at
// once, taking ops from the same queue.
func (s *Store) commitLoop() {
	batch := make([]*op, 0, s.opts.maxBatch)
	for {
		// One committer at a time takes ops: the next group while the
		// others commit theirs.
		s.intake.Lock()
		o, ok := <-s.queue
		if !ok {
			s.intake.Unlock()
			return
		}
		batch = append(batch[:0], o)
	fill:
		for len(batch) < s.opts.maxBatch {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		batch = s.gather(batch)
		s.prev.Store(s.flying.Swap(int32(len(batch))))
		s.busy.Add(1)
		s.intake.Unlock()
		s.commitGroup(batch)
		s.busy.Add(-1)
		select {
		case s.freed <- struct{}{}:
		default: // a token is waiting already
		}
		clear(batch)
	}
}

// groupWait bounds how long a group waits for the group in flight
// (gather): one that is stuck, behind another host's lock say, holds the
// next group back no longer.
const groupWait = 20 * time.Millisecond

// gather adds queued ops to batch while another group is in flight and
// batch is smaller than the last two groups started, until that group
// ends or groupWait passed, and returns batch.
//
// A transaction costs the server about as much for one completion as for
// several (bench/dbos, pg_stat_statements: a completion of its own 0.2 to
// 0.3 ms, a group of five 0.7 ms), so a small group started beside a
// larger one costs more than it saves. With 16 runs in flight on 2
// cores, groups that did not wait averaged 4.8 completions, a third of
// them alone; groups that wait settle at half the runs in flight each and
// cost about 15% less CPU per completion on the server and 8% less in
// the engine, at the same completions/s. With the runs spread over three
// hosts, where the server's CPU is what runs out, that is 11% more
// completions/s. A group waits for the larger of the last two groups, not
// the one in flight only, or it would start a little smaller each time
// (a straggler left for the next one) and the groups would shrink back.
// A group with no other in flight never waits: a lone run's completions
// commit at once.
func (s *Store) gather(batch []*op) []*op {
	want := min(int(max(s.flying.Load(), s.prev.Load())), s.opts.maxBatch)
	if s.busy.Load() == 0 || len(batch) >= want {
		return batch
	}
	t := time.NewTimer(time.Duration(s.groupWait.Load()))
	defer t.Stop()
	for s.busy.Load() > 0 && len(batch) < want {
		select {
		case o, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		case <-s.freed:
		case <-t.C:
			return batch
		}
	}
	return batch
}

// commitGroup runs the group's calls of bulkhead_complete_node, its
// set-based statements and its other writes in one pipelined batch, which
// the server runs as one transaction. Each call settles its own conflicts
// without raising, so one member's conflict does not undo the others. When the
// transaction fails anyway (a deadlock with another host's writes, a lost
// connection), every member is retried in a transaction of its own.
func (s *Store) commitGroup(batch []*op) {
	live := batch[:0:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- err
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	if len(live) > 1 {
		// Rows are locked in key order, so groups of two hosts that
		// touch the same nodes wait for each other instead of deadlocking.
		slices.SortStableFunc(live, func(a, b *op) int {
			return cmp.Or(strings.Compare(a.res.RunID, b.res.RunID), strings.Compare(a.res.Node, b.res.Node))
		})
		results, err := s.runGroup(live)
		if err == nil {
			s.grouped.Add(1)
			for i, o := range live {
				o.done <- results[i]
			}
			return
		}
	}
	for _, o := range live {
		var results []error
		err := retryDeadlock(o.ctx, func() error {
			var err error
			results, err = s.runGroup([]*op{o})
			return err
		})
		if err == nil {
			err = results[0]
		}
		o.done <- s.translateCall(o.ctx, err)
	}
}

// retryDeadlock runs fn, a transaction of its own, again when PostgreSQL
// chose it as the victim of a deadlock (which rolled it back), up to three
// times in all.
func retryDeadlock(ctx context.Context, fn func() error) error {
	for try := 1; ; try++ {
		err := fn()
		var pe *pgconn.PgError
		if try == 3 || !errors.As(err, &pe) || pe.Code != "40P01" || ctx.Err() != nil {
			return err
		}
	}
}

// groupTimeout bounds one group's transaction, so a group stuck behind
// another host's lock cannot stall the committer for longer; its members
// are then retried one by one, each bounded by its caller's context.
const groupTimeout = 30 * time.Second

// runGroup commits ops in one transaction and returns each op's result, or
// the error that failed the transaction.
func (s *Store) runGroup(ops []*op) ([]error, error) { return s.runGroupOn(s.writes, ops) }

// batchSender sends a batch or a query: the pool, or a transaction of its
// own.
type batchSender interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	QueryRow(context.Context, string, ...any) pgx.Row
}

// runGroupOn is runGroup with the batch sent through bs.
func (s *Store) runGroupOn(bs batchSender, ops []*op) ([]error, error) {
	ctx, cancel := context.WithTimeout(s.life, groupTimeout)
	defer cancel()
	if len(ops) == 1 {
		// One member: bounded by its caller too.
		stop := context.AfterFunc(ops[0].ctx, cancel)
		defer stop()
	}
	// A group of setGroupMin CompleteTasks or more commits them with the
	// set-based statements, queued first, and so does a
	// completion that ends its run; every other op is a call of its own.
	b := &pgx.Batch{}
	var tasks tasksCall
	index := make(map[*op]int, len(ops))
	n := 0
	for _, o := range ops {
		if o.task != nil {
			n++
		}
	}
	set := func(o *op) bool { return o.task != nil && (n >= setGroupMin || o.task.end != nil) }
	for i, o := range ops {
		index[o] = i
		if set(o) {
			tasks.add(o)
		}
	}
	if len(tasks.ops) > 0 {
		tasks.queue(b)
	}
	for _, o := range ops {
		if !set(o) {
			o.queue(b)
		}
	}
	results := make([]error, len(ops))
	if len(b.QueuedQueries) == 1 {
		// One statement: sent as a query, in one write, where a batch
		// takes two (its statements, then the sync that ends it).
		q := b.QueuedQueries[0]
		res, err := ops[0].scan(bs.QueryRow(ctx, q.SQL, q.Arguments...))
		if err != nil {
			return nil, err
		}
		return []error{res}, nil
	}
	// A batch without BEGIN runs as one implicit transaction, committed
	// when the server reaches the batch's end: one round trip per group.
	br := bs.SendBatch(ctx, b)
	if len(tasks.ops) > 0 {
		if err := tasks.scan(br, results, index); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	for i, o := range ops {
		if set(o) {
			continue
		}
		res, err := o.scan(br.QueryRow())
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		results[i] = res
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	return results, nil
}
