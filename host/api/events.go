package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// DefaultEventBuffer is how many events wait for one slow subscriber
// before the next are dropped.
const DefaultEventBuffer = 256

// eventPing is how often an idle stream sends a comment, so proxies and
// clients see it is alive.
const eventPing = 15 * time.Second

// maxEventFilters caps the run_id and kind values of one subscription.
const maxEventFilters = 64

// EventView is one event of GET /v1/events, the data of an SSE message.
type EventView struct {
	// ID increases by one per event published by this service.
	ID       uint64 `json:"id"`
	Time     string `json:"time"`
	Kind     string `json:"kind"`
	RunID    string `json:"run_id"`
	Workflow string `json:"workflow,omitempty"`
	Node     string `json:"node,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	// Seq is a checkpoint's sequence number (checkpoint events).
	Seq      uint64               `json:"seq,omitempty"`
	Progress *statestore.Progress `json:"progress,omitempty"`
	// Status is the run's status (run events).
	Status  string `json:"status,omitempty"`
	Resumed bool   `json:"resumed,omitempty"`
	Error   string `json:"error,omitempty"`
	// Version is the plugin version an attempt ran on.
	Version string `json:"version,omitempty"`
	// Delay is the time since the failed attempt (node_retried), as "1.5s".
	Delay      string `json:"delay,omitempty"`
	DeadLetter string `json:"dead_letter,omitempty"`
	// Host is the host whose engine emitted the event.
	Host string `json:"host,omitempty"`
}

// Events fans the engine's events out to the subscribers of GET
// /v1/events. Publish never blocks: each subscriber has a bounded buffer,
// and what does not fit is dropped and counted, and the subscriber is told
// how many it missed. Close ends every stream (the server's shutdown does
// not wait for streams). Safe for concurrent use; it starts no goroutine.
type Events struct {
	buffer int
	next   atomic.Uint64

	mu     sync.Mutex
	host   string
	subs   map[*subscriber]struct{}
	closed chan struct{}
	once   sync.Once
}

// NewEvents returns an event fan-out whose events name host (the engine's
// owner); buffer <= 0 means DefaultEventBuffer.
func NewEvents(host string, buffer int) *Events {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	return &Events{host: host, buffer: buffer, subs: map[*subscriber]struct{}{}, closed: make(chan struct{})}
}

type subscriber struct {
	runs    map[string]bool // nil: every run
	kinds   map[string]bool // nil: every kind
	ch      chan []byte
	dropped atomic.Uint64
}

func (s *subscriber) wants(ev workflow.Event) bool {
	return (s.runs == nil || s.runs[ev.RunID]) && (s.kinds == nil || s.kinds[string(ev.Kind)])
}

// Publish hands ev to every subscriber that wants it; it is the engine's
// observer (workflow.WithObserver) and returns at once.
func (e *Events) Publish(ev workflow.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) == 0 {
		return
	}
	var msg []byte
	for s := range e.subs {
		if !s.wants(ev) {
			continue
		}
		if msg == nil {
			msg = e.encode(ev)
		}
		select {
		case s.ch <- msg:
		default:
			s.dropped.Add(1)
		}
	}
}

// encode returns the SSE message of ev; e.mu is held.
func (e *Events) encode(ev workflow.Event) []byte {
	v := EventView{ID: e.next.Add(1), Time: ev.Time.UTC().Format(time.RFC3339Nano), Kind: string(ev.Kind),
		RunID: ev.RunID, Workflow: ev.Workflow, Node: ev.Node, Attempt: ev.Attempt, Seq: ev.Seq,
		Status: string(ev.Status), Resumed: ev.Resumed, Error: truncate(ev.Err, maxMessage), Version: ev.Version,
		DeadLetter: ev.DeadLetter, Host: e.host}
	if ev.Kind == workflow.EventProgress {
		p := ev.Progress
		v.Progress = &p
	}
	if ev.Delay > 0 {
		v.Delay = ev.Delay.String()
	}
	b, _ := json.Marshal(v) // plain strings and numbers: cannot fail
	return fmt.Appendf(nil, "id: %d\ndata: %s\n\n", v.ID, b)
}

// SetHost sets the host the events name (the engine's owner, once it is
// known).
func (e *Events) SetHost(host string) {
	e.mu.Lock()
	e.host = host
	e.mu.Unlock()
}

// Subscribers is the number of open streams.
func (e *Events) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Close ends every stream and refuses new ones; it is idempotent.
func (e *Events) Close() { e.once.Do(func() { close(e.closed) }) }

func (e *Events) subscribe(runs, kinds []string) (*subscriber, bool) {
	s := &subscriber{ch: make(chan []byte, e.buffer)}
	if len(runs) > 0 {
		s.runs = map[string]bool{}
		for _, r := range runs {
			s.runs[r] = true
		}
	}
	if len(kinds) > 0 {
		s.kinds = map[string]bool{}
		for _, k := range kinds {
			s.kinds[k] = true
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.closed:
		return nil, false
	default:
	}
	e.subs[s] = struct{}{}
	return s, true
}

func (e *Events) unsubscribe(s *subscriber) {
	e.mu.Lock()
	delete(e.subs, s)
	e.mu.Unlock()
}

// eventKinds are the kinds a subscription may filter on.
var eventKinds = []workflow.EventKind{workflow.EventRunAccepted, workflow.EventRunStarted, workflow.EventNodeStarted,
	workflow.EventNodeFinished, workflow.EventNodeFailed, workflow.EventNodeSkipped, workflow.EventCheckpointSaved,
	workflow.EventCheckpointLoaded, workflow.EventProgress, workflow.EventRunFinished, workflow.EventRunPaused,
	workflow.EventNodeLost, workflow.EventAttemptFailed, workflow.EventNodeRetried}

// eventFilters reads the run_id and kind query parameters (repeated or
// comma-separated).
func eventFilters(r *http.Request) (runs, kinds []string, err error) {
	split := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	q := r.URL.Query()
	runs, kinds = split(q["run_id"]), split(q["kind"])
	if len(runs) > maxEventFilters || len(kinds) > maxEventFilters {
		return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "at most %d run_id and %d kind values", maxEventFilters, maxEventFilters)
	}
	for _, id := range runs {
		if err := CheckID("run_id", id); err != nil {
			return nil, nil, err
		}
	}
	for _, k := range kinds {
		if !slices.Contains(eventKinds, workflow.EventKind(k)) {
			return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "unknown event kind %q", truncate(k, 64))
		}
	}
	return runs, kinds, nil
}

// events serves GET /v1/events: a Server-Sent Events stream of run and
// node events until the client goes away or the service shuts down.
func (a *API) events(w http.ResponseWriter, r *http.Request) error {
	es := a.deps.Events
	if es == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "no event stream in this service")
	}
	runs, kinds, err := eventFilters(r)
	if err != nil {
		return err
	}
	sub, ok := es.subscribe(runs, kinds)
	if !ok {
		return ErrDraining
	}
	defer es.unsubscribe(sub)
	// The server's read and write timeouts are for requests, not for a
	// stream that lasts as long as the client wants it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: how long a disconnected EventSource waits to reconnect.
	if _, err := fmt.Fprint(w, "retry: 2000\n: subscribed\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	ping := time.NewTicker(eventPing)
	defer ping.Stop()
	for {
		var out []byte
		select {
		case <-r.Context().Done():
			return nil
		case <-es.closed:
			// The drain's last events first.
			for more := true; more; {
				select {
				case msg := <-sub.ch:
					out = append(out, msg...)
				default:
					more = false
				}
			}
			out = append(out, "event: shutdown\ndata: {}\n\n"...)
			_, _ = w.Write(out)
			_ = rc.Flush()
			return nil
		case <-ping.C:
			out = append(out, ": ping\n\n"...)
		case msg := <-sub.ch:
			out = append(out, msg...)
			for more := true; more && len(out) < 64<<10; {
				select {
				case msg := <-sub.ch:
					out = append(out, msg...)
				default:
					more = false
				}
			}
		}
		if n := sub.dropped.Swap(0); n > 0 {
			out = fmt.Appendf(out, "event: dropped\ndata: {\"dropped\":%d}\n\n", n)
		}
		if _, err := w.Write(out); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}
