package badgerstore

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

var _ statestore.Queue = (*Store)(nil)

// epochShift places the open epoch in the high bits of order seqs and
// claim tokens: both keep growing across reopens without a write per task.
const epochShift = 40

// taskID names a task: its run and node.
type taskID struct{ run, node string }

// entry is a task the queue holds in memory: claimed, or released and
// waiting for its delay or a claim. A queued task that was never claimed
// since Open is only on disk.
type entry struct {
	id     taskID
	seq    uint64 // the task's order seq on disk
	order  uint64 // claim order once released: a seq given at release
	first  int
	claims int
	owner  string // "" once released
	token  int64
	at     time.Time // lease end while claimed, not-before while released
	heap   *entryHeap
	index  int
}

func (e *entry) task() statestore.Task {
	return statestore.Task{RunID: e.id.run, Node: e.id.node, Owner: e.owner, Token: e.token,
		Claims: e.claims, First: e.first, LeaseUntil: e.at}
}

// entryHeap is a heap of entries that keeps each entry's index.
type entryHeap struct {
	less  func(a, b *entry) bool
	items []*entry
}

func (h *entryHeap) Len() int           { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}

func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.heap, e.index = h, len(h.items)
	h.items = append(h.items, e)
}

func (h *entryHeap) Pop() any {
	n := len(h.items) - 1
	e := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	e.heap, e.index = nil, -1
	return e
}

func (h *entryHeap) min() *entry {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

// queue is the in-memory half of the task queue: the claims, the released
// tasks and the cursor over the order index. mu guards everything but seq.
type queue struct {
	mu    sync.Mutex
	epoch uint64
	// seq is the last order seq given: to a task written by the committer,
	// or to a task released in memory.
	seq   atomic.Uint64
	token int64
	// cursor is the last order key the claims read; scanning resumes after
	// it, so keys deleted behind it are never read again. ahead holds the
	// tasks read up to the cursor and not claimed yet, in queue order.
	cursor []byte
	ahead  []orderItem
	// visible: every task with a seq up to it is committed or abandoned
	// (moved by the committer's after hooks). scanned: the order index was
	// read to its end when visible was that, so a claim reads it again only
	// when visible passed scanned.
	visible, scanned uint64
	tasks            map[taskID]*entry
	// waiting holds claimed entries until their lease ends and released
	// ones until their delay passes, soonest first; released holds the
	// released entries that are due, in claim order.
	waiting, released entryHeap
}

func newQueue(epoch uint64) *queue {
	q := &queue{
		epoch:    epoch,
		token:    int64(epoch << epochShift),
		visible:  epoch << epochShift,
		tasks:    map[taskID]*entry{},
		waiting:  entryHeap{less: func(a, b *entry) bool { return a.at.Before(b.at) }},
		released: entryHeap{less: func(a, b *entry) bool { return a.order < b.order }},
	}
	q.seq.Store(epoch << epochShift)
	return q
}

// openEpoch counts this Open in the store, so that tasks queued before it
// count as claimed once. Open calls it before the committer starts.
func (s *Store) openEpoch() (uint64, error) {
	var epoch uint64
	err := s.db.Update(func(txn *badger.Txn) error {
		v, err := getValue(txn, keyEpoch)
		switch {
		case errors.Is(err, statestore.ErrNotFound):
		case err != nil:
			return err
		case len(v) != 8:
			return fmt.Errorf("queue epoch: malformed")
		default:
			epoch = binary.BigEndian.Uint64(v)
		}
		epoch++
		return txn.Set(keyEpoch, binary.BigEndian.AppendUint64(nil, epoch))
	})
	if err == nil {
		err = s.db.Sync()
	}
	return epoch, err
}

// take claims e for owner. q.mu is held.
func (q *queue) take(e *entry, owner string, lease time.Duration, now time.Time) statestore.Task {
	q.token++
	e.owner, e.token, e.at = owner, q.token, now.Add(lease)
	e.claims++
	q.wait(e)
	return e.task()
}

// wait moves e to the waiting heap. q.mu is held.
func (q *queue) wait(e *entry) {
	if e.heap != nil {
		heap.Remove(e.heap, e.index)
	}
	heap.Push(&q.waiting, e)
}

// forget drops e from memory. q.mu is held.
func (q *queue) forget(e *entry) {
	if e.heap != nil {
		heap.Remove(e.heap, e.index)
	}
	if q.tasks[e.id] == e {
		delete(q.tasks, e.id)
	}
}

// forgetTasks drops the entries of tasks that were deleted on disk. q.mu
// is held.
func (q *queue) forgetTasks(gone []taskRef) {
	for _, g := range gone {
		if e := q.tasks[g.id]; e != nil && e.seq == g.seq {
			q.forget(e)
		}
		if i, ok := slices.BinarySearchFunc(q.ahead, g.seq, func(o orderItem, seq uint64) int { return cmp.Compare(o.seq, seq) }); ok {
			q.ahead = slices.Delete(q.ahead, i, i+1)
		}
	}
}

// holds returns the entry of f's task when f is its live claim. q.mu is
// held.
func (q *queue) holds(f statestore.Fence, now time.Time) *entry {
	e := q.tasks[taskID{f.RunID, f.Node}]
	if e == nil || e.owner == "" || e.owner != f.Owner || e.token != f.Token || !now.Before(e.at) {
		return nil
	}
	return e
}

// see records that the tasks up to seq are committed or abandoned. q.mu is
// held.
func (q *queue) see(seq uint64) {
	if seq > q.visible {
		q.visible = seq
	}
}

// taskRef is a task on disk.
type taskRef struct {
	id  taskID
	seq uint64
}

func orderKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pOrder}, seq)
}

func orderValue(first int, id taskID) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id.run)+1+len(id.node)), uint64(first))
	v = append(v, id.run...)
	v = append(v, 0)
	return append(v, id.node...)
}

// orderItem is an entry of the order index.
type orderItem struct {
	key   []byte
	seq   uint64
	first int
	id    taskID
}

func decodeOrder(k, v []byte) (orderItem, error) {
	i := bytes.IndexByte(v[min(8, len(v)):], 0)
	if len(k) != 9 || len(v) < 8 || i < 0 {
		return orderItem{}, fmt.Errorf("task order entry %q: malformed", k)
	}
	rest := v[8:]
	return orderItem{key: bytes.Clone(k), seq: binary.BigEndian.Uint64(k[1:]), first: int(binary.BigEndian.Uint64(v)),
		id: taskID{string(rest[:i]), string(rest[i+1:])}}, nil
}

// taskSeq returns the order seq of a task, and false when it has none.
func taskSeq(txn *badger.Txn, id taskID) (uint64, bool, error) {
	v, err := getValue(txn, key(pTask, id.run, id.node))
	if errors.Is(err, statestore.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("task %s/%s: malformed", id.run, id.node)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// runTasks returns the tasks of a run on disk.
func runTasks(txn *badger.Txn, run string) ([]taskRef, error) {
	prefix := runPrefix(pTask, run)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	var out []taskRef
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		if len(v) != 8 {
			return nil, fmt.Errorf("task %q: malformed", item.Key())
		}
		out = append(out, taskRef{taskID{run, string(item.Key()[len(prefix):])}, binary.BigEndian.Uint64(v)})
	}
	return out, nil
}

// deleteTasks deletes the tasks of a run and returns them.
func deleteTasks(w *writer, run string) ([]taskRef, error) {
	tasks, err := runTasks(w.txn, run)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if err := deleteTask(w, t); err != nil {
			return nil, err
		}
	}
	return tasks, nil
}

func deleteTask(w *writer, t taskRef) error {
	if err := w.del(key(pTask, t.id.run, t.id.node)); err != nil {
		return err
	}
	return w.del(orderKey(t.seq))
}

// readyNode is a node found ready, with its last attempt.
type readyNode struct {
	statestore.ReadyNode
	last int
}

// planReady returns the nodes that are ready in txn: every need journaled
// (done, the node being completed, counts as journaled), not journaled
// themselves and without a task. It only reads.
func planReady(txn *badger.Txn, run, done string, nodes []statestore.ReadyNode) ([]readyNode, error) {
	var out []readyNode
next:
	for _, n := range nodes {
		if ok, err := exists(txn, key(pResult, run, n.Node)); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if ok, err := exists(txn, key(pTask, run, n.Node)); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		for _, need := range n.Needs {
			if need == done {
				continue
			}
			ok, err := exists(txn, key(pResult, run, need))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue next
			}
		}
		last, err := lastAttempt(txn, key(pAttempt, run, n.Node))
		if err != nil {
			return nil, err
		}
		out = append(out, readyNode{n, last})
	}
	return out, nil
}

// queued is a task written by queueNodes.
type queued struct {
	taskRef
	first int
}

// queueNodes records the attempt last+Block of each planned node and
// queues its task with First = last+1.
func (s *Store) queueNodes(w *writer, run string, plan []readyNode, now time.Time) ([]queued, error) {
	out := make([]queued, 0, len(plan))
	for _, n := range plan {
		a, err := json.Marshal(statestore.NodeAttempt{RunID: run, Node: n.Node, Attempt: n.last + n.Block, StartedAt: now})
		if err != nil {
			return nil, err
		}
		if err := w.set(key(pAttempt, run, n.Node), a); err != nil {
			return nil, err
		}
		t := queued{taskRef{taskID{run, n.Node}, s.q.seq.Add(1)}, n.last + 1}
		if err := w.set(key(pTask, run, n.Node), binary.BigEndian.AppendUint64(nil, t.seq)); err != nil {
			return nil, err
		}
		if err := w.set(orderKey(t.seq), orderValue(t.first, t.id)); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// lastSeq returns the highest seq of tasks.
func lastSeq(tasks []queued) uint64 {
	var m uint64
	for _, t := range tasks {
		m = max(m, t.seq)
	}
	return m
}

// SubmitRun implements statestore.Queue. The run and its root tasks are
// one committer op.
func (s *Store) SubmitRun(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode) (statestore.Run, bool, error) {
	if err := rules.CheckReady(r.ID, roots); err != nil {
		return statestore.Run{}, false, err
	}
	for _, n := range roots {
		if len(n.Needs) > 0 {
			return statestore.Run{}, false, fmt.Errorf("%w: root %s has needs", statestore.ErrInvalid, n.Node)
		}
	}
	now := s.opts.now()
	r, err := rules.PrepareCreate(r, now)
	if err != nil {
		return statestore.Run{}, false, err
	}
	var out statestore.Run
	var created bool
	var last uint64
	err = s.writeThen(ctx, func(w *writer) error {
		last = 0
		old, _, err := getRun(w.txn, r.ID)
		switch {
		case err == nil:
			out, created = old, false
			if !rules.SameRun(old, r) {
				return rules.ConflictError(old, r)
			}
			return nil
		case !errors.Is(err, statestore.ErrNotFound):
			return err
		}
		var plan []readyNode
		if !r.Status.Finished() {
			for _, n := range roots {
				prev, err := lastAttempt(w.txn, key(pAttempt, r.ID, n.Node))
				if err != nil {
					return err
				}
				plan = append(plan, readyNode{n, prev})
			}
		}
		out, created = r, true
		if _, err := putRun(w, r, nil); err != nil {
			return err
		}
		tasks, err := s.queueNodes(w, r.ID, plan, now)
		last = lastSeq(tasks)
		return err
	}, s.afterQueued(&last))
	if err != nil && !errors.Is(err, statestore.ErrConflict) {
		return statestore.Run{}, false, err
	}
	return out.Clone(), created, err
}

// afterQueued is the after hook of an op that queued tasks up to *last.
func (s *Store) afterQueued(last *uint64) func(bool) {
	return func(bool) {
		s.q.mu.Lock()
		s.q.see(*last)
		s.q.mu.Unlock()
	}
}

// EnqueueNodes implements statestore.Queue.
func (s *Store) EnqueueNodes(ctx context.Context, runID string, nodes []statestore.ReadyNode) error {
	if err := rules.CheckReady(runID, nodes); err != nil {
		return err
	}
	now := s.opts.now()
	var last uint64
	return s.writeThen(ctx, func(w *writer) error {
		last = 0
		r, _, err := getRun(w.txn, runID)
		if err != nil || r.Status.Finished() {
			return err
		}
		plan, err := planReady(w.txn, runID, "", nodes)
		if err != nil {
			return err
		}
		tasks, err := s.queueNodes(w, runID, plan, now)
		last = lastSeq(tasks)
		return err
	}, s.afterQueued(&last))
}

// ClaimTasks implements statestore.Queue. Expired leases are rescued
// first, soonest expired first; then queued tasks are claimed in queue
// order, from the tasks released in memory and the order index on disk,
// read from the cursor on.
func (s *Store) ClaimTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	return s.claimTasks(ctx, owner, "", max, lease)
}

// ClaimRunTasks implements statestore.Queue. It reads the run's tasks.
func (s *Store) ClaimRunTasks(ctx context.Context, owner, runID string, max int, lease time.Duration) ([]statestore.Task, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	return s.claimTasks(ctx, owner, runID, max, lease)
}

func (s *Store) claimTasks(ctx context.Context, owner, runID string, max int, lease time.Duration) ([]statestore.Task, error) {
	return s.withQueue(ctx, owner, max, lease, func(q *queue) ([]statestore.Task, error) {
		// The snapshot is taken under q.mu: an op's after hook, which runs
		// after its commit and takes q.mu, cannot fall between them.
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		now := s.opts.now()
		var out []statestore.Task
		var err error
		if runID == "" {
			out, err = q.claim(txn, owner, max, lease, now)
		} else {
			out, err = q.claimRun(txn, runID, owner, max, lease, now)
		}
		return out, translate(err)
	})
}

// newEntry makes the in-memory entry of a task read from disk. A task
// queued before this Open counts as claimed once.
func (q *queue) newEntry(o orderItem) *entry {
	e := &entry{id: o.id, seq: o.seq, order: o.seq, first: o.first, index: -1}
	if o.seq>>epochShift < q.epoch {
		e.claims = 1
	}
	if old := q.tasks[o.id]; old != nil {
		q.forget(old)
	}
	q.tasks[o.id] = e
	return e
}

// claim is ClaimTasks. q.mu is held.
func (q *queue) claim(txn *badger.Txn, owner string, max int, lease time.Duration, now time.Time) ([]statestore.Task, error) {
	out := q.claimExpired(owner, max, lease, now)
	for len(out) < max {
		c, ok, err := q.next(txn, max-len(out))
		if err != nil {
			return out, err
		}
		r := q.released.min()
		if !ok && r == nil {
			break
		}
		if r != nil && (!ok || r.order < c.seq) {
			out = append(out, q.take(r, owner, lease, now))
			continue
		}
		q.ahead = q.ahead[1:]
		out = append(out, q.take(q.newEntry(c), owner, lease, now))
	}
	return out, nil
}

// readAhead is how many order entries a claim reads past the cursor at
// once; they wait in q.ahead for the next claims, so a claim of one task
// does not open a Badger iterator each time.
const readAhead = 64

// next returns the first task of q.ahead that is not held in memory,
// reading more of the order index when q.ahead runs out; false when no
// task is queued. q.mu is held.
func (q *queue) next(txn *badger.Txn, want int) (orderItem, bool, error) {
	filled := false
	for {
		for len(q.ahead) > 0 {
			c := q.ahead[0]
			if e := q.tasks[c.id]; e != nil && e.seq == c.seq {
				q.ahead = q.ahead[1:] // claimed meanwhile (ClaimRunTasks)
				continue
			}
			return c, true, nil
		}
		if filled {
			return orderItem{}, false, nil
		}
		filled = true
		if err := q.fill(txn, max(want, readAhead)); err != nil {
			return orderItem{}, false, err
		}
	}
}

// fill reads up to n tasks of the order index after the cursor into
// q.ahead, skipping the tasks held in memory. It reads nothing when the
// index was read to its end and nothing was queued since. q.mu is held.
func (q *queue) fill(txn *badger.Txn, n int) error {
	visible := q.visible
	if visible <= q.scanned {
		return nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pOrder}, PrefetchValues: true, PrefetchSize: min(n, 64)})
	defer it.Close()
	if q.cursor == nil {
		it.Rewind()
	} else {
		it.Seek(q.cursor)
		if it.Valid() && bytes.Equal(it.Item().Key(), q.cursor) {
			it.Next()
		}
	}
	q.ahead = slices.Clip(q.ahead)
	for ; it.Valid() && len(q.ahead) < n; it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		o, err := decodeOrder(item.Key(), v)
		if err != nil {
			return err
		}
		q.cursor = o.key
		if e := q.tasks[o.id]; e != nil && e.seq == o.seq {
			continue // claimed by ClaimRunTasks or kept by a completion
		}
		q.ahead = append(q.ahead, o)
	}
	if !it.Valid() {
		q.scanned = visible
	}
	return nil
}

// claimRun is ClaimRunTasks. q.mu is held.
func (q *queue) claimRun(txn *badger.Txn, runID, owner string, max int, lease time.Duration, now time.Time) ([]statestore.Task, error) {
	tasks, err := runTasks(txn, runID)
	if err != nil {
		return nil, err
	}
	var rescue, ready []*entry
	var disk []orderItem
	for _, t := range tasks {
		e := q.tasks[t.id]
		if e != nil && e.seq == t.seq {
			switch {
			case e.owner != "" && !now.Before(e.at):
				rescue = append(rescue, e)
			case e.owner == "" && !e.at.After(now):
				ready = append(ready, e)
			}
			continue
		}
		v, err := getValue(txn, orderKey(t.seq))
		if err != nil {
			return nil, fmt.Errorf("task %s/%s: order entry: %w", t.id.run, t.id.node, err)
		}
		o, err := decodeOrder(orderKey(t.seq), v)
		if err != nil {
			return nil, err
		}
		disk = append(disk, o)
	}
	slices.SortFunc(rescue, func(a, b *entry) int { return a.at.Compare(b.at) })
	for _, e := range disk {
		ready = append(ready, &entry{id: e.id, seq: e.seq, order: e.seq, first: e.first, index: -1})
	}
	slices.SortFunc(ready, func(a, b *entry) int { return cmp.Compare(a.order, b.order) })
	var out []statestore.Task
	for _, e := range append(rescue, ready...) {
		if len(out) == max {
			break
		}
		if q.tasks[e.id] != e {
			e = q.newEntry(orderItem{seq: e.seq, first: e.first, id: e.id})
		}
		out = append(out, q.take(e, owner, lease, now))
	}
	return out, nil
}

// lockQueue takes s.mu shared and q.mu, unless the store is closed; the
// returned func releases both.
func (s *Store) lockQueue(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, statestore.ErrClosed
	}
	s.q.mu.Lock()
	return func() { s.q.mu.Unlock(); s.mu.RUnlock() }, nil
}

// ExtendLeases implements statestore.Queue.
func (s *Store) ExtendLeases(ctx context.Context, owner string, fences []statestore.Fence, lease time.Duration) ([]statestore.Fence, error) {
	if err := rules.CheckClaim(owner, 1, lease); err != nil {
		return nil, err
	}
	unlock, err := s.lockQueue(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := s.opts.now()
	var lost []statestore.Fence
	for _, f := range fences {
		e := s.q.holds(f, now)
		if e == nil || f.Owner != owner {
			lost = append(lost, f)
			continue
		}
		e.at = now.Add(lease)
		heap.Fix(e.heap, e.index)
	}
	return lost, nil
}

// ReleaseTask implements statestore.Queue. The task stays on disk where it
// was; in memory it waits for its delay and then is claimed behind the
// tasks queued before the release.
func (s *Store) ReleaseTask(ctx context.Context, f statestore.Fence, delay time.Duration) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	unlock, err := s.lockQueue(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	now := s.opts.now()
	e := s.q.holds(f, now)
	if e == nil {
		return rules.Fenced(f)
	}
	e.owner, e.at, e.order = "", now.Add(delay), s.q.seq.Add(1)
	s.q.wait(e)
	return nil
}

// WakeTask implements statestore.Queue. Only a task released in memory
// can wait for a delay; one only on disk is claimable already.
func (s *Store) WakeTask(ctx context.Context, runID, node string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	if err := statestore.CheckID("node", node); err != nil {
		return err
	}
	unlock, err := s.lockQueue(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	now := s.opts.now()
	if e := s.q.tasks[taskID{runID, node}]; e != nil && e.owner == "" && e.heap == &s.q.waiting && e.at.After(now) {
		e.at = now
		heap.Fix(e.heap, e.index)
	}
	return nil
}

// CheckFence implements statestore.Queue.
func (s *Store) CheckFence(ctx context.Context, f statestore.Fence) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	unlock, err := s.lockQueue(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if s.q.holds(f, s.opts.now()) == nil {
		return rules.Fenced(f)
	}
	return nil
}

// fenceHolds checks, in the committer's transaction, that f is the live
// claim of a task that is still on disk: an earlier op of the same group
// may have completed or dropped it. q.mu is held.
func (s *Store) fenceHolds(txn *badger.Txn, f statestore.Fence) (*entry, error) {
	e := s.q.holds(f, s.opts.now())
	if e == nil {
		return nil, rules.Fenced(f)
	}
	seq, ok, err := taskSeq(txn, e.id)
	if err != nil {
		return nil, err
	}
	if !ok || seq != e.seq {
		return nil, rules.Fenced(f)
	}
	return e, nil
}

// fenced checks the fence ctx carries, if any, inside a committer op.
func (s *Store) fenced(ctx context.Context, txn *badger.Txn) error {
	f, ok := statestore.FenceFrom(ctx)
	if !ok {
		return nil
	}
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	_, err := s.fenceHolds(txn, f)
	return err
}

// checkCtxFence validates the fence ctx carries, if any.
func checkCtxFence(ctx context.Context) error {
	if f, ok := statestore.FenceFrom(ctx); ok {
		return rules.CheckFence(f)
	}
	return nil
}

// CompleteTask implements statestore.Queue: the fence check, the journal
// entry, the task's removal and the dependents' attempts and tasks are one
// committer op, so they commit and sync together.
func (s *Store) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	now := s.opts.now()
	c, err := rules.CheckCompletion(c, now)
	if err != nil {
		return statestore.Task{}, false, err
	}
	v, err := json.Marshal(c.Result)
	if err != nil {
		return statestore.Task{}, false, err
	}
	run, node := c.Fence.RunID, c.Fence.Node
	resKey := key(pResult, run, node)
	var (
		conflict bool
		gone     []taskRef
		kept     *entry
		next     statestore.Task
		last     uint64
	)
	err = s.writeThen(ctx, func(w *writer) error {
		q := s.q
		q.mu.Lock()
		defer q.mu.Unlock()
		if kept != nil { // a replay: the first try was not committed
			q.forget(kept)
			kept = nil
		}
		conflict, gone, last = false, nil, 0
		e, err := s.fenceHolds(w.txn, c.Fence)
		if err != nil {
			return err
		}
		self := taskRef{e.id, e.seq}
		done, err := exists(w.txn, resKey)
		if err != nil {
			return err
		}
		if done {
			conflict, gone = true, []taskRef{self}
			return deleteTask(w, self)
		}
		plan, err := planReady(w.txn, run, node, c.Next)
		if err != nil {
			return err
		}
		if err := w.set(resKey, v); err != nil {
			return err
		}
		if err := deleteTask(w, self); err != nil {
			return err
		}
		tasks, err := s.queueNodes(w, run, plan, now)
		if err != nil {
			return err
		}
		gone, last = []taskRef{self}, lastSeq(tasks)
		if c.Keep && len(tasks) > 0 {
			t := tasks[0]
			kept = q.newEntry(orderItem{seq: t.seq, first: t.first, id: t.id})
			next = q.take(kept, c.Fence.Owner, c.Lease, s.opts.now())
		}
		return nil
	}, func(committed bool) {
		q := s.q
		q.mu.Lock()
		defer q.mu.Unlock()
		q.see(last)
		if committed {
			q.forgetTasks(gone)
		} else if kept != nil {
			q.forget(kept)
			kept = nil
		}
	})
	if err != nil {
		return statestore.Task{}, false, err
	}
	if conflict {
		return statestore.Task{}, false, rules.CompletedConflict(run, node)
	}
	return next, kept != nil, nil
}

// DropTasks implements statestore.Queue.
func (s *Store) DropTasks(ctx context.Context, runID string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	var gone []taskRef
	return s.writeThen(ctx, func(w *writer) error {
		var err error
		gone, err = deleteTasks(w, runID)
		return err
	}, s.afterDeleted(&gone))
}

// afterDeleted is the after hook of an op that deleted *gone.
func (s *Store) afterDeleted(gone *[]taskRef) func(bool) {
	return func(committed bool) {
		if !committed || len(*gone) == 0 {
			return
		}
		s.q.mu.Lock()
		s.q.forgetTasks(*gone)
		s.q.mu.Unlock()
	}
}

// UnqueuedRuns implements statestore.Queue. It walks the index of
// unfinished runs, which is in creation order, keeping the page's smallest
// IDs: a page costs a walk of the unfinished runs, and a step or a seek in
// the task keys for each.
func (s *Store) UnqueuedRuns(ctx context.Context, after string, limit int) ([]string, string, error) {
	limit, err := rules.Limit(limit)
	if err != nil {
		return nil, "", err
	}
	page := &idHeap{}
	err = s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pUnfinished}})
		defer it.Close()
		tasks := &taskCursor{it: txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pTask}})}
		defer tasks.it.Close()
		// The runs are looked up in sorted batches, so the cursor mostly
		// steps.
		batch := make([]string, 0, unqueuedBatch)
		check := func() {
			slices.Sort(batch)
			for _, id := range batch {
				if page.Len() > limit && id >= page.ids[0] {
					break
				}
				if tasks.has(runPrefix(pTask, id)) {
					continue
				}
				heap.Push(page, id)
				if page.Len() > limit+1 {
					heap.Pop(page)
				}
			}
			batch = batch[:0]
		}
		for it.Rewind(); it.Valid(); it.Next() {
			_, id := splitTimeKey(it.Item().Key())
			if id <= after || (page.Len() > limit && id >= page.ids[0]) {
				continue
			}
			if batch = append(batch, id); len(batch) == unqueuedBatch {
				check()
			}
		}
		check()
		return ctx.Err()
	})
	if err != nil {
		return nil, "", err
	}
	ids := page.ids
	slices.Sort(ids)
	if len(ids) <= limit {
		return ids, "", nil
	}
	ids = ids[:limit]
	return ids, ids[limit-1], nil
}

// taskCursor answers whether a run has a task, for runs asked about
// mostly in ascending order (run IDs usually grow with their creation
// time): a Seek costs a search of every level of the tree, so while the
// prefix asked for is past the last one the cursor steps forward instead,
// and seeks only when the prefix goes back or is more than cursorSteps
// keys ahead.
type taskCursor struct {
	it   *badger.Iterator
	last []byte // the prefix of the last answer; nil before the first
}

const cursorSteps = 16

// unqueuedBatch is how many runs UnqueuedRuns looks up at a time.
const unqueuedBatch = 1024

func (c *taskCursor) has(p []byte) bool {
	// The cursor is at the first key at or after c.last: stepping forward
	// from there past the keys below p reaches the first key at or after p.
	stepped := c.last != nil && bytes.Compare(p, c.last) >= 0
	for n := 0; stepped && c.it.Valid() && bytes.Compare(c.it.Item().Key(), p) < 0; n++ {
		if n == cursorSteps {
			stepped = false
			break
		}
		c.it.Next()
	}
	if !stepped {
		c.it.Seek(p)
	}
	c.last = p
	return c.it.Valid() && bytes.HasPrefix(c.it.Item().Key(), p)
}

// idHeap is a max-heap of run IDs.
type idHeap struct{ ids []string }

func (h *idHeap) Len() int           { return len(h.ids) }
func (h *idHeap) Less(i, j int) bool { return h.ids[i] > h.ids[j] }
func (h *idHeap) Swap(i, j int)      { h.ids[i], h.ids[j] = h.ids[j], h.ids[i] }
func (h *idHeap) Push(x any)         { h.ids = append(h.ids, x.(string)) }
func (h *idHeap) Pop() any {
	n := len(h.ids) - 1
	x := h.ids[n]
	h.ids = h.ids[:n]
	return x
}
