package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// DefaultMaxConcurrency is how many items of a map run at once when the
// node does not set max_concurrency.
const DefaultMaxConcurrency = 8

// MaxMapConcurrency bounds max_concurrency.
const MaxMapConcurrency = 1000

// Map makes a node run its plugin once per item of a JSON array: the
// output of the node ForEach names (`for_each: NODE`).
type Map struct {
	ForEach string
	// MaxConcurrency bounds how many items run at once.
	MaxConcurrency int
	// Tolerate is how many items may fail for good before the node fails
	// (0: the first failed item fails the node); with Percent, it is a
	// percentage of the items.
	Tolerate int
	Percent  bool
	// Line is the line of for_each in the file.
	Line int
}

// ItemName is the name a map item's invocation, checkpoints and journal
// entry carry: "NODE[i]", i counting from 0. Node names cannot contain
// brackets, so it never names a node.
func ItemName(node string, i int) string { return node + "[" + strconv.Itoa(i) + "]" }

// failedItemsName is the journal entry listing the failed items a map
// node tolerated.
func failedItemsName(node string) string { return node + "[failed]" }

// ItemError is an item of a map that failed for good.
type ItemError struct {
	Item  int    `json:"item"`
	Error string `json:"error"`
}

// nodeKey parses a node key the base parser does not know: for_each,
// max_concurrency, tolerate and when. It returns false for any other key.
func (p *parser) nodeKey(n *Node, k, v *yaml.Node) bool {
	switch k.Value {
	case "for_each":
		p.mapOf(n, k).ForEach = p.str(v, "for_each")
	case "max_concurrency":
		var c int
		if v.Kind != yaml.ScalarNode || v.Decode(&c) != nil || c < 1 || c > MaxMapConcurrency {
			p.errf(v.Line, "node %q: max_concurrency: want a whole number from 1 to %d", n.Name, MaxMapConcurrency)
			return true
		}
		p.mapOf(n, k).MaxConcurrency = c
	case "tolerate":
		m := p.mapOf(n, k)
		s := strings.TrimSpace(v.Value)
		pct := strings.HasSuffix(s, "%")
		c, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if v.Kind != yaml.ScalarNode || err != nil || c < 0 || (pct && c > 100) {
			p.errf(v.Line, "node %q: tolerate: want a number of items (5) or a percentage (10%%)", n.Name)
			return true
		}
		m.Tolerate, m.Percent = c, pct
	case "workflow":
		p.childKey(n, v)
	case "when":
		if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
			p.errf(v.Line, "node %q: when: want an expression", n.Name)
			return true
		}
		p.whens = append(p.whens, pendingWhen{n, v})
	default:
		return false
	}
	return true
}

type pendingWhen struct {
	n *Node
	v *yaml.Node
}

func (p *parser) mapOf(n *Node, k *yaml.Node) *Map {
	if n.Map == nil {
		n.Map = &Map{MaxConcurrency: DefaultMaxConcurrency}
	}
	if k.Value == "for_each" {
		n.Map.Line = k.Line
	}
	return n.Map
}

// resolveNodeKeys checks what nodeKey read once every node is known: a
// map's for_each names another node, which becomes one of its needs, and
// conditions and until expressions compile against the needs.
func (p *parser) resolveNodeKeys(w *Workflow) {
	for _, name := range sortedKeys(w.Nodes) {
		n := w.Nodes[name]
		p.checkChild(n)
		m := n.Map
		if m == nil {
			continue
		}
		switch {
		case m.ForEach == "":
			p.errf(n.Line, "node %q: max_concurrency and tolerate need for_each", n.Name)
		case m.ForEach == n.Name:
			p.errf(m.Line, "node %q: for_each names the node itself", n.Name)
		case w.Nodes[m.ForEach] == nil:
			p.errf(m.Line, "node %q: for_each names unknown node %q", n.Name, m.ForEach)
		default:
			if !containsStr(n.Needs, m.ForEach) {
				n.Needs = append(n.Needs, m.ForEach)
			}
		}
	}
	for _, pw := range p.whens {
		p.compileCondition(pw.n, pw.v)
	}
	for _, pu := range p.untils {
		p.compileUntil(pu.n, pu.v)
	}
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// journaledAll reports whether every node of w is in results (which may
// also hold map items).
func journaledAll(w *Workflow, results map[string]statestore.NodeResult) bool {
	if len(results) < len(w.Nodes) {
		return false
	}
	for name := range w.Nodes {
		if _, ok := results[name]; !ok {
			return false
		}
	}
	return true
}

// mapItems splits the output of a map's for_each node into its items. A
// skipped for_each node gives no items.
func mapItems(src statestore.NodeResult) ([]json.RawMessage, error) {
	if src.Skipped {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(src.Output, &items); err != nil {
		return nil, fmt.Errorf("for_each %s: its output is not a JSON array: %w", src.Node, err)
	}
	return items, nil
}

// mapExec is one execution of a map node.
type mapExec struct {
	e     *Engine
	rs    *runState
	n     *Node
	f     statestore.Fence
	first int
	items []json.RawMessage

	mu       sync.Mutex
	outs     [][]byte
	done     []bool
	ndone    int
	failed   []ItemError
	version  string
	stop     error // why no more items start: a store error (pause), a lost claim
	tooMany  bool
	lastEmit time.Time
}

// execMap runs the items of map node n that are not journaled, at most
// MaxConcurrency at a time, each through the node's policy with its own
// invocation and idempotency key (ItemName), journals each item's output
// as it finishes, and completes the node with the array of item outputs
// in order.
func (e *Engine) execMap(ctx, nctx context.Context, rs *runState, f statestore.Fence, n *Node, results map[string]statestore.NodeResult, first int) (statestore.Task, bool) {
	started := time.Now()
	items, err := mapItems(results[n.Map.ForEach])
	if err != nil {
		e.failNode(ctx, rs, f, n, results[n.Map.ForEach].Output, first, "", err)
		return statestore.Task{}, false
	}
	m := &mapExec{e: e, rs: rs, n: n, f: f, first: first, items: items,
		outs: make([][]byte, len(items)), done: make([]bool, len(items))}
	var todo []int
	for i := range items {
		if r, ok := results[ItemName(n.Name, i)]; ok {
			m.outs[i], m.done[i] = r.Output, true
			m.ndone++
			continue
		}
		todo = append(todo, i)
	}
	m.progress(true)

	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n.Map.MaxConcurrency, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if !m.runItem(ictx, i) {
					cancel()
				}
			}
		}()
	}
	// Each item is durable on its own: when the engine stops, no new item
	// starts, and the items not started run on the next claim.
	fed := 0
feed:
	for _, i := range todo {
		select {
		case next <- i:
			fed++
		case <-ictx.Done():
			break feed
		case <-e.stopping:
			break feed
		}
	}
	close(next)
	wg.Wait()

	switch {
	case nctx.Err() != nil:
		e.stopped_(rs, f, nctx)
		return statestore.Task{}, false
	case fed < len(todo) && m.stop == nil && !m.tooMany:
		e.releaseAfter(f, 0) // stopping
		return statestore.Task{}, false
	case errors.Is(m.stop, statestore.ErrFenced):
		e.lostClaim(rs, f, m.stop)
		return statestore.Task{}, false
	case m.stop != nil:
		e.pause(rs, f, "map item", m.stop)
		return statestore.Task{}, false
	case m.tooMany:
		e.failNode(ctx, rs, f, n, results[n.Map.ForEach].Output, first, m.version, m.failure())
		return statestore.Task{}, false
	}
	m.progress(true)
	if len(m.failed) > 0 {
		b, _ := json.Marshal(m.failed)
		err := e.store.CompleteNode(ctx, statestore.NodeResult{RunID: rs.id, Node: failedItemsName(n.Name), Output: b,
			Attempts: first, StartedAt: started, Host: e.o.owner})
		if err != nil && !errors.Is(err, statestore.ErrConflict) {
			e.pause(rs, f, "journal failed items", err)
			return statestore.Task{}, false
		}
	}
	var out bytes.Buffer
	out.WriteByte('[')
	failed := map[int]bool{}
	for _, fe := range m.failed {
		failed[fe.Item] = true
	}
	for i, o := range m.outs {
		if i > 0 {
			out.WriteByte(',')
		}
		if failed[i] {
			out.WriteString("null")
			continue
		}
		out.Write(jsonValue(o))
	}
	out.WriteByte(']')
	version := m.version
	if version == "" {
		version = rs.versions[n.Name]
	}
	return e.completeTask(ctx, rs, f, statestore.NodeResult{RunID: rs.id, Node: n.Name, Output: out.Bytes(),
		Attempts: first, PluginVersion: version, StartedAt: started, FinishedAt: time.Now(), Host: e.o.owner})
}

// failure is the error of a map that failed more items than it tolerates.
func (m *mapExec) failure() error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d items failed (tolerated: %s)", len(m.failed), len(m.items), m.tolerance())
	for i, fe := range m.failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(m.failed)-3)
			break
		}
		fmt.Fprintf(&b, "; item %d: %s", fe.Item, fe.Error)
	}
	return errors.New(b.String())
}

func (m *mapExec) tolerance() string {
	if m.n.Map.Percent {
		return strconv.Itoa(m.n.Map.Tolerate) + "%"
	}
	return strconv.Itoa(m.n.Map.Tolerate)
}

// tolerates reports whether failed failures are within the node's policy.
func (m *mapExec) tolerates(failed int) bool {
	if m.n.Map.Percent {
		return failed*100 <= m.n.Map.Tolerate*len(m.items)
	}
	return failed <= m.n.Map.Tolerate
}

// runItem runs and journals item i. It returns false when no more items
// should start: the node stops, fails or pauses.
func (m *mapExec) runItem(ctx context.Context, i int) bool {
	e, rs, n := m.e, m.rs, m.n
	name := ItemName(n.Name, i)
	input := []byte(m.items[i])
	if n.Config != nil {
		var err error
		if input, err = json.Marshal(struct {
			Config map[string]any  `json:"config"`
			Input  json.RawMessage `json:"input"`
		}{n.Config, input}); err != nil {
			return m.itemFailed(i, err)
		}
	}
	started := time.Now()
	dur := &itemDurable{&durable{e: e, rs: rs, node: name, plugin: n.Plugin, attempt: m.first, fence: m.f}}
	req := host.InvokeRequest{
		Plugin: n.Plugin, Function: n.Function, Input: input, Version: rs.versions[n.Name],
		Invocation: abi.Invocation{RunID: rs.id, Workflow: rs.wf.Name, Node: name, Attempt: m.first,
			IdempotencyKey: abi.IdempotencyKey(rs.id, name)},
		Durable:   dur,
		Logger:    e.log,
		OnAttempt: e.attemptEvents(rs, name),
	}
	if req.Version == "" {
		req.Version = n.Version
	}
	if p := rs.wf.EffectivePolicy(n.Name); p != nil {
		req.Policy = p
		req.PolicyKey = policyKey(rs.wf.Name, n.Name, p)
	}
	res, err := e.inv.Invoke(ctx, req)
	if err != nil && ctx.Err() != nil {
		return false
	}
	if ferr := dur.fenced(); ferr != nil {
		return m.halt(ferr)
	}
	if serr := dur.refused(); err != nil && serr != nil {
		return m.halt(fmt.Errorf("item %d failed after the store refused its write: %w (item error: %v)", i, serr, err))
	}
	if err != nil && n.Fallback != nil {
		item := *n
		item.Name = name
		res, err = e.fallback(ctx, rs, &item, input, m.first, res.Attempts, err, m.f)
		if err != nil && ctx.Err() != nil {
			return false
		}
	}
	if err != nil {
		return m.itemFailed(i, err)
	}
	attempts := m.first + max(res.Attempts, 1) - 1
	err = e.store.CompleteNode(ctx, statestore.NodeResult{RunID: rs.id, Node: name, Output: res.Output, Attempts: attempts,
		PluginVersion: res.Version, StartedAt: started, FinishedAt: time.Now(), Fallback: res.Fallback, Host: e.o.owner})
	switch {
	case errors.Is(err, statestore.ErrConflict):
		// Journaled already (by an earlier owner of the node that lost
		// its claim after the write): that entry stands.
		e.conflicts.Add(1)
		journaled, rerr := e.store.NodeResultsOf(ctx, rs.id, []string{name})
		if rerr != nil {
			return m.halt(rerr)
		}
		res.Output = journaled[name].Output
	case err != nil && ctx.Err() != nil:
		return false
	case err != nil:
		return m.halt(err)
	}
	m.mu.Lock()
	m.outs[i], m.done[i] = res.Output, true
	m.ndone++
	if res.Version != "" {
		m.version = res.Version
	}
	m.mu.Unlock()
	m.progress(false)
	return true
}

// halt stops the map for err (a store error or a lost claim).
func (m *mapExec) halt(err error) bool {
	m.mu.Lock()
	if m.stop == nil {
		m.stop = err
	}
	m.mu.Unlock()
	return false
}

// itemFailed records item i's failure; it returns false when the map now
// fails more items than it tolerates.
func (m *mapExec) itemFailed(i int, err error) bool {
	m.e.log.Warn("map item failed", "run_id", m.rs.id, "node", m.n.Name, "item", i, "err", err)
	m.mu.Lock()
	m.failed = append(m.failed, ItemError{Item: i, Error: err.Error()})
	ok := m.tolerates(len(m.failed))
	if !ok {
		m.tooMany = true
	}
	m.mu.Unlock()
	m.progress(false)
	return ok
}

// progress records the map's progress in the run (written with the run's
// progress) and reports it to the observer at most every 100ms, or now
// with force.
func (m *mapExec) progress(force bool) {
	m.mu.Lock()
	p := statestore.Progress{Done: int64(m.ndone), Total: int64(len(m.items))}
	if len(m.failed) > 0 {
		p.Message = fmt.Sprintf("%d failed", len(m.failed))
	}
	now := time.Now()
	emit := force || now.Sub(m.lastEmit) >= 100*time.Millisecond || m.ndone == len(m.items)
	if emit {
		m.lastEmit = now
	}
	failed := append([]ItemError(nil), m.failed...)
	m.mu.Unlock()
	m.rs.mu.Lock()
	m.rs.progress[m.n.Name] = p
	m.rs.dirty = true
	if m.rs.maps == nil {
		m.rs.maps = map[string][]ItemError{}
	}
	m.rs.maps[m.n.Name] = failed
	m.rs.mu.Unlock()
	if emit {
		m.e.emit(Event{Kind: EventProgress, RunID: m.rs.id, Workflow: m.rs.wf.Name, Node: m.n.Name, Attempt: m.first, Progress: p})
	}
}

// itemDurable is the host.Durable of one map item: checkpoints under the
// item's name, the plugin's state, and no progress of its own (the map
// reports items done).
type itemDurable struct{ *durable }

func (itemDurable) Progress(context.Context, abi.Progress) {}

// MapInfo is the progress of a map node (RunInfo).
type MapInfo struct {
	// Total is the number of items (0 until the for_each node is journaled).
	Total int `json:"total"`
	// Done counts the items journaled.
	Done int `json:"done"`
	// Failed lists the items that failed for good: tolerated ones of a
	// finished node, or those of the execution running here.
	Failed []ItemError `json:"failed,omitempty"`
}

// mapInfo reports the progress of map node n from the journal and, while
// the node runs here, its failed items.
func mapInfo(n *Node, results map[string]statestore.NodeResult, live []ItemError) *MapInfo {
	mi := &MapInfo{}
	if src, ok := results[n.Map.ForEach]; ok {
		items, _ := mapItems(src)
		mi.Total = len(items)
		for i := range items {
			if _, ok := results[ItemName(n.Name, i)]; ok {
				mi.Done++
			}
		}
	}
	if r, ok := results[failedItemsName(n.Name)]; ok {
		_ = json.Unmarshal(r.Output, &mi.Failed)
	} else {
		mi.Failed = live
	}
	return mi
}
