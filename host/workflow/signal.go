package workflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// AttrEventPrefix prefixes the run attributes that hold the external
// events delivered to a run: "event.NAME" holds the JSON of a
// ReceivedEvent.
const AttrEventPrefix = "event."

// ReceivedEvent is an external event delivered to a run (Engine.Signal).
type ReceivedEvent struct {
	Name string          `json:"name"`
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
	At   time.Time       `json:"at"`
}

// SignalResult says what Signal did.
type SignalResult struct {
	RunID string `json:"run_id"`
	Event string `json:"event"`
	ID    string `json:"id"`
	// Delivered is false when an event with this ID had been delivered
	// before: nothing changed.
	Delivered bool `json:"delivered"`
	// Woken lists the nodes waiting for the event that it woke.
	Woken []string `json:"woken,omitempty"`
}

var errDuplicate = errors.New("workflow: event delivered already")

// Signal delivers the external event name with the JSON payload data
// (empty: null) to a run, durably, exactly once per event ID (""
// generates one): a second delivery with the same ID changes nothing and
// reports Delivered false. The event is kept with the run, so a node that
// waits for it later (wait_for: name) gets it at once; a node waiting now
// is woken. A failed or cancelled run takes events too, for its resume. A
// run holds one event per name: another ID for a name already delivered is
// refused. Errors: ErrNotFound, ErrFinished (the run succeeded),
// ErrConflict (the name has another event), statestore.ErrInvalid (a bad name or
// payload).
func (e *Engine) Signal(ctx context.Context, runID, name, eventID string, data []byte) (SignalResult, error) {
	res := SignalResult{RunID: runID, Event: name, ID: eventID}
	if !nameRE.MatchString(name) {
		return res, fmt.Errorf("%w: event name %q: use letters, digits, '.', '_' and '-' (at most 128)", statestore.ErrInvalid, name)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("null")
	}
	if !json.Valid(data) {
		return res, fmt.Errorf("%w: the payload of event %q is not JSON", statestore.ErrInvalid, name)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return res, fmt.Errorf("%w: %v", statestore.ErrInvalid, err)
	}
	if eventID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		eventID = hex.EncodeToString(b[:])
		res.ID = eventID
	}
	if strings.IndexByte(eventID, 0) >= 0 || len(eventID) > 256 {
		return res, fmt.Errorf("%w: event ID: at most 256 bytes, no NUL", statestore.ErrInvalid)
	}
	ev := ReceivedEvent{Name: name, ID: eventID, Data: compact.Bytes(), At: e.now().UTC()}
	val, err := json.Marshal(ev)
	if err != nil {
		return res, err
	}
	r, err := e.store.UpdateRun(ctx, runID, func(r *statestore.Run) error {
		for k, v := range r.Attrs {
			if !strings.HasPrefix(k, AttrEventPrefix) {
				continue
			}
			var old ReceivedEvent
			if json.Unmarshal([]byte(v), &old) == nil && old.ID == eventID {
				return errDuplicate
			}
			if k == AttrEventPrefix+name {
				return fmt.Errorf("%w: run %s has event %q already (ID %s)", ErrConflict, runID, name, old.ID)
			}
		}
		if r.Status == statestore.StatusSucceeded {
			return fmt.Errorf("%w: run %s succeeded", ErrFinished, runID)
		}
		if r.Attrs == nil {
			r.Attrs = map[string]string{}
		}
		r.Attrs[AttrEventPrefix+name] = string(val)
		return nil
	})
	switch {
	case errors.Is(err, errDuplicate):
		return res, nil
	case err != nil:
		return res, err
	}
	res.Delivered = true
	w, err := e.workflowOf(r)
	if err != nil {
		return res, nil // delivered; nothing here knows its nodes
	}
	for _, node := range w.Order {
		if n := w.Nodes[node]; n.Wait != nil && n.Wait.Event == name {
			e.wakeNode(ctx, runID, node)
			res.Woken = append(res.Woken, node)
		}
	}
	return res, nil
}

// eventOf returns the event name delivered to r, if any.
func eventOf(r statestore.Run, name string) (ReceivedEvent, bool, error) {
	v, ok := r.Attrs[AttrEventPrefix+name]
	if !ok {
		return ReceivedEvent{}, false, nil
	}
	var ev ReceivedEvent
	if err := json.Unmarshal([]byte(v), &ev); err != nil {
		return ReceivedEvent{}, false, fmt.Errorf("event %q of run %s: %w", name, r.ID, err)
	}
	return ev, true, nil
}

// Events returns the external events delivered to a run, by name.
func Events(r statestore.Run) []ReceivedEvent {
	var out []ReceivedEvent
	for _, k := range sortedKeys(r.Attrs) {
		if name, ok := strings.CutPrefix(k, AttrEventPrefix); ok {
			if ev, ok, err := eventOf(r, name); ok && err == nil {
				out = append(out, ev)
			}
		}
	}
	return out
}
