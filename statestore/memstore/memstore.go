package memstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// Option configures a Store.
type Option interface{ apply(*options) }

type options struct {
	maxCheckpoints int
	now            func() time.Time
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithMaxCheckpoints sets how many checkpoints are kept per run and node
// (statestore.DefaultMaxCheckpoints when n < 1).
func WithMaxCheckpoints(n int) Option {
	return optionFunc(func(o *options) { o.maxCheckpoints = n })
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.now = now })
}

type nodeKey struct{ run, node string }

type memRun struct {
	run statestore.Run
	rev uint64
}

// Store is an in-memory statestore.Store. The zero value is not usable; call New.
type Store struct {
	opts options

	mu          sync.Mutex
	closed      bool
	rev         uint64
	runs        map[string]*memRun
	results     map[nodeKey]statestore.NodeResult
	attempts    map[nodeKey]int
	checkpoints map[nodeKey][]statestore.Checkpoint
	nextSeq     map[nodeKey]uint64
	state       map[[2]string][]byte
	dead        map[string]statestore.DeadLetter

	// Indexes, changed with the records they point to under mu: every run
	// and the runs of each status in ListRuns order, dead-letter IDs and
	// those of each run.
	all       *sortedSet[orderKey]
	byStatus  map[statestore.RunStatus]*sortedSet[orderKey]
	deadIDs   *sortedSet[string]
	deadByRun map[string]*sortedSet[string]

	// The queue: every task, the due queued ones in claim order, those
	// released with a delay by due time, the claimed ones, and how many
	// tasks each run has.
	tasks    map[nodeKey]*memTask
	queued   *sortedSet[queuedKey]
	sleeping *sortedSet[sleepKey]
	claimed  map[nodeKey]*memTask
	runTasks map[string]int
	taskSeq  uint64
	token    int64
}

var _ statestore.Store = (*Store)(nil)

// New returns an empty store.
func New(opts ...Option) *Store {
	o := options{maxCheckpoints: statestore.DefaultMaxCheckpoints, now: time.Now}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.maxCheckpoints < 1 {
		o.maxCheckpoints = statestore.DefaultMaxCheckpoints
	}
	return &Store{
		opts:        o,
		runs:        map[string]*memRun{},
		results:     map[nodeKey]statestore.NodeResult{},
		attempts:    map[nodeKey]int{},
		checkpoints: map[nodeKey][]statestore.Checkpoint{},
		nextSeq:     map[nodeKey]uint64{},
		state:       map[[2]string][]byte{},
		dead:        map[string]statestore.DeadLetter{},
		all:         newSortedSet(compareKeys),
		byStatus:    map[statestore.RunStatus]*sortedSet[orderKey]{},
		deadIDs:     newSortedSet(strings.Compare),
		deadByRun:   map[string]*sortedSet[string]{},
		tasks:       map[nodeKey]*memTask{},
		queued:      newSortedSet(compareQueued),
		sleeping:    newSortedSet(compareSleeping),
		claimed:     map[nodeKey]*memTask{},
		runTasks:    map[string]int{},
	}
}

// setStatus moves run r's entry in the status index from old ("" for a
// new run) to r.Status.
func (s *Store) setStatus(r statestore.Run, old statestore.RunStatus) {
	if old == r.Status {
		return
	}
	k := runKey(r)
	if old != "" {
		s.byStatus[old].remove(k)
	}
	set := s.byStatus[r.Status]
	if set == nil {
		set = newSortedSet(compareKeys)
		s.byStatus[r.Status] = set
	}
	set.add(k)
}

func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return statestore.ErrClosed
	}
	return nil
}

// Close implements statestore.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// CreateRun implements statestore.Runs.
func (s *Store) CreateRun(ctx context.Context, r statestore.Run) (statestore.Run, bool, error) {
	return s.createRun(ctx, r, nil)
}

// createRun stores r; then, when it is new, calls also with s.mu held.
func (s *Store) createRun(ctx context.Context, r statestore.Run, also func()) (statestore.Run, bool, error) {
	r, err := rules.PrepareCreate(r, s.opts.now())
	if err != nil {
		return statestore.Run{}, false, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.Run{}, false, err
	}
	defer s.mu.Unlock()
	if old, ok := s.runs[r.ID]; ok {
		if !rules.SameRun(old.run, r) {
			return old.run.Clone(), false, rules.ConflictError(old.run, r)
		}
		return old.run.Clone(), false, nil
	}
	s.rev++
	s.runs[r.ID] = &memRun{run: r, rev: s.rev}
	s.all.add(runKey(r))
	s.setStatus(r, "")
	if also != nil {
		also()
	}
	return r.Clone(), true, nil
}

// GetRun implements statestore.Runs.
func (s *Store) GetRun(ctx context.Context, id string) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.Run{}, err
	}
	defer s.mu.Unlock()
	m, ok := s.runs[id]
	if !ok {
		return statestore.Run{}, rules.RunNotFound(id)
	}
	return m.run.Clone(), nil
}

// UpdateRun implements statestore.Runs.
func (s *Store) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	for {
		if err := s.lock(ctx); err != nil {
			return statestore.Run{}, err
		}
		m, ok := s.runs[id]
		if !ok {
			s.mu.Unlock()
			return statestore.Run{}, rules.RunNotFound(id)
		}
		old, rev := m.run.Clone(), m.rev
		s.mu.Unlock()

		r, err := rules.ApplyUpdate(old, fn, s.opts.now())
		if err != nil {
			return statestore.Run{}, err
		}

		if err := s.lock(ctx); err != nil {
			return statestore.Run{}, err
		}
		m, ok = s.runs[id]
		if !ok {
			s.mu.Unlock()
			return statestore.Run{}, rules.RunNotFound(id)
		}
		if m.rev != rev {
			s.mu.Unlock()
			continue
		}
		s.rev++
		s.setStatus(r, m.run.Status)
		m.run, m.rev = r, s.rev
		s.mu.Unlock()
		return r.Clone(), nil
	}
}

// ListRuns implements statestore.Runs. It reads the index of the filter
// (every run, or the runs of one status) from the cursor on, so a page
// costs O(log runs + page).
func (s *Store) ListRuns(ctx context.Context, f statestore.RunFilter) ([]statestore.Run, string, error) {
	limit, err := rules.Limit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	var after orderKey
	if f.After != "" {
		if after.ns, after.id, err = rules.ParseRunCursor(f.After); err != nil {
			return nil, "", err
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", fmt.Errorf("%w: run status %q", statestore.ErrInvalid, f.Status)
	}
	if err := s.lock(ctx); err != nil {
		return nil, "", err
	}
	defer s.mu.Unlock()
	set := s.all
	if f.Status != "" {
		set = s.byStatus[f.Status]
	}
	keys, more := set.page(after, f.After != "", f.Newest, limit)
	var out []statestore.Run
	for _, k := range keys {
		out = append(out, s.runs[k.id].run.Clone())
	}
	if !more || len(out) == 0 {
		return out, "", nil
	}
	last := out[len(out)-1]
	return out, rules.RunCursor(last.CreatedAt, last.ID), nil
}

// UnfinishedRuns implements statestore.Runs. It reads the pending and
// running indexes, so finished runs cost nothing.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]statestore.Run, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var keys []orderKey
	for _, st := range []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning} {
		keys = append(keys, s.byStatus[st].all()...)
	}
	slices.SortFunc(keys, compareKeys)
	var out []statestore.Run
	for _, k := range keys {
		out = append(out, s.runs[k.id].run.Clone())
	}
	return out, nil
}

// CompleteNode implements statestore.Journal.
func (s *Store) CompleteNode(ctx context.Context, res statestore.NodeResult, next ...statestore.NodeAttempt) error {
	now := s.opts.now()
	res, err := rules.PrepareResult(res, now)
	if err != nil {
		return err
	}
	next, err = rules.PrepareNext(res, next, now)
	if err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.runs[res.RunID]; !ok {
		return rules.RunNotFound(res.RunID)
	}
	k := nodeKey{res.RunID, res.Node}
	if _, ok := s.results[k]; ok {
		return rules.CompletedConflict(res.RunID, res.Node)
	}
	for _, a := range next {
		if last := s.attempts[nodeKey{a.RunID, a.Node}]; a.Attempt <= last {
			return rules.AttemptConflict(a, last)
		}
	}
	s.results[k] = res
	for _, a := range next {
		s.attempts[nodeKey{a.RunID, a.Node}] = a.Attempt
	}
	return nil
}

// StartAttempt implements statestore.Journal.
func (s *Store) StartAttempt(ctx context.Context, a statestore.NodeAttempt) error {
	a, err := rules.PrepareAttempt(a, s.opts.now())
	if err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.runs[a.RunID]; !ok {
		return rules.RunNotFound(a.RunID)
	}
	k := nodeKey{a.RunID, a.Node}
	if last := s.attempts[k]; a.Attempt <= last {
		return rules.AttemptConflict(a, last)
	}
	s.attempts[k] = a.Attempt
	return nil
}

// NodeResults implements statestore.Journal.
func (s *Store) NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := map[string]statestore.NodeResult{}
	for k, r := range s.results {
		if k.run == runID {
			r.Output = append([]byte(nil), r.Output...)
			out[k.node] = r
		}
	}
	return out, nil
}

// NodeResultsOf implements statestore.Journal.
func (s *Store) NodeResultsOf(ctx context.Context, runID string, nodes []string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if err := rules.CheckNode(runID, n); err != nil {
			return nil, err
		}
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make(map[string]statestore.NodeResult, len(nodes))
	for _, n := range nodes {
		if r, ok := s.results[nodeKey{runID, n}]; ok {
			r.Output = append([]byte(nil), r.Output...)
			out[n] = r
		}
	}
	return out, nil
}

// LastAttempt implements statestore.Journal.
func (s *Store) LastAttempt(ctx context.Context, runID, node string) (int, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.attempts[nodeKey{runID, node}], nil
}

// SaveCheckpoint implements statestore.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, runID, node string, data []byte) (uint64, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	now := s.opts.now()
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if _, ok := s.runs[runID]; !ok {
		return 0, rules.RunNotFound(runID)
	}
	if err := s.fenced(ctx); err != nil {
		return 0, err
	}
	k := nodeKey{runID, node}
	s.nextSeq[k]++
	seq := s.nextSeq[k]
	cps := append(s.checkpoints[k], statestore.Checkpoint{
		RunID: runID, Node: node, Seq: seq, Data: append([]byte{}, data...), CreatedAt: now,
	})
	if n := len(cps) - s.opts.maxCheckpoints; n > 0 {
		cps = slices.Delete(cps, 0, n)
	}
	s.checkpoints[k] = cps
	return seq, nil
}

func cloneCheckpoint(c statestore.Checkpoint) statestore.Checkpoint {
	c.Data = append([]byte{}, c.Data...)
	return c
}

// LatestCheckpoint implements statestore.Checkpoints.
func (s *Store) LatestCheckpoint(ctx context.Context, runID, node string) (statestore.Checkpoint, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return statestore.Checkpoint{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.Checkpoint{}, err
	}
	defer s.mu.Unlock()
	cps := s.checkpoints[nodeKey{runID, node}]
	if len(cps) == 0 {
		return statestore.Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s/%s", statestore.ErrNotFound, runID, node)
	}
	return cloneCheckpoint(cps[len(cps)-1]), nil
}

// ListCheckpoints implements statestore.Checkpoints.
func (s *Store) ListCheckpoints(ctx context.Context, runID, node string) ([]statestore.Checkpoint, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []statestore.Checkpoint
	for _, k := range slices.SortedFunc(maps.Keys(s.checkpoints), func(a, b nodeKey) int {
		return cmp.Or(cmp.Compare(a.run, b.run), cmp.Compare(a.node, b.node))
	}) {
		if k.run != runID || (node != "" && k.node != node) {
			continue
		}
		for _, c := range s.checkpoints[k] {
			out = append(out, cloneCheckpoint(c))
		}
	}
	return out, nil
}

// StateGet implements statestore.PluginState.
func (s *Store) StateGet(ctx context.Context, plugin, key string) ([]byte, error) {
	if err := rules.CheckKey(plugin, key); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	v, ok := s.state[[2]string{plugin, key}]
	if !ok {
		return nil, fmt.Errorf("%w: state %s/%s", statestore.ErrNotFound, plugin, key)
	}
	return append([]byte{}, v...), nil
}

// StateSet implements statestore.PluginState.
func (s *Store) StateSet(ctx context.Context, plugin, key string, value []byte) error {
	if err := rules.CheckKey(plugin, key); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.fenced(ctx); err != nil {
		return err
	}
	s.state[[2]string{plugin, key}] = append([]byte{}, value...)
	return nil
}

// StateDelete implements statestore.PluginState.
func (s *Store) StateDelete(ctx context.Context, plugin, key string) error {
	if err := rules.CheckKey(plugin, key); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.fenced(ctx); err != nil {
		return err
	}
	delete(s.state, [2]string{plugin, key})
	return nil
}

// StateUsage implements statestore.PluginState.
func (s *Store) StateUsage(ctx context.Context, plugin string) (statestore.StateUsage, error) {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return statestore.StateUsage{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.StateUsage{}, err
	}
	defer s.mu.Unlock()
	var u statestore.StateUsage
	for k, v := range s.state {
		if k[0] == plugin {
			u.Keys++
			u.Bytes += int64(len(k[1]) + len(v))
		}
	}
	return u, nil
}

// PutDeadLetter implements statestore.DeadLetters.
func (s *Store) PutDeadLetter(ctx context.Context, d statestore.DeadLetter) (statestore.DeadLetter, error) {
	d, err := rules.PrepareDeadLetter(d, s.opts.now())
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.DeadLetter{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.dead[d.ID]; ok {
		return statestore.DeadLetter{}, fmt.Errorf("%w: dead letter %q exists", statestore.ErrConflict, d.ID)
	}
	s.dead[d.ID] = d
	s.deadIDs.add(d.ID)
	if d.RunID != "" {
		set := s.deadByRun[d.RunID]
		if set == nil {
			set = newSortedSet(strings.Compare)
			s.deadByRun[d.RunID] = set
		}
		set.add(d.ID)
	}
	return d.Clone(), nil
}

// GetDeadLetter implements statestore.DeadLetters.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return statestore.DeadLetter{}, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.DeadLetter{}, err
	}
	defer s.mu.Unlock()
	d, ok := s.dead[id]
	if !ok {
		return statestore.DeadLetter{}, fmt.Errorf("%w: dead letter %q", statestore.ErrNotFound, id)
	}
	return d.Clone(), nil
}

// ListDeadLetters implements statestore.DeadLetters.
func (s *Store) ListDeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error) {
	limit, err := rules.Limit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	if err := s.lock(ctx); err != nil {
		return nil, "", err
	}
	defer s.mu.Unlock()
	set := s.deadIDs
	if f.RunID != "" {
		set = s.deadByRun[f.RunID]
	}
	ids, more := set.page(f.After, f.After != "", false, limit)
	var out []statestore.DeadLetter
	for _, id := range ids {
		out = append(out, s.dead[id].Clone())
	}
	if !more || len(out) == 0 {
		return out, "", nil
	}
	return out, out[len(out)-1].ID, nil
}

// DeleteDeadLetter implements statestore.DeadLetters.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	d, ok := s.dead[id]
	if !ok {
		return fmt.Errorf("%w: dead letter %q", statestore.ErrNotFound, id)
	}
	delete(s.dead, id)
	s.deadIDs.remove(id)
	if set := s.deadByRun[d.RunID]; set != nil {
		set.remove(id)
		if set.empty() {
			delete(s.deadByRun, d.RunID)
		}
	}
	return nil
}

// CountDeadLetters implements statestore.DeadLetters.
// CountRuns implements statestore.Runs.
func (s *Store) CountRuns(ctx context.Context, status statestore.RunStatus) (int, error) {
	if !status.Valid() {
		return 0, fmt.Errorf("%w: run status %q", statestore.ErrInvalid, status)
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.byStatus[status].len(), nil
}

func (s *Store) CountDeadLetters(ctx context.Context) (int, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return len(s.dead), nil
}
