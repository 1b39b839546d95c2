package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Schedule starts runs of a workflow on a cron schedule (the workflow
// file's schedule key). Each due time gets one run, whose ID is derived
// from the workflow and the due time: however many engines share the
// store, the store creates that run once.
type Schedule struct {
	// Cron is a standard 5-field cron expression or a descriptor (@daily,
	// @every 1h), in UTC unless it starts with CRON_TZ=Zone.
	Cron string
	// Overlap says what a due time does while the schedule's previous run
	// is unfinished: OverlapSkip (the default) skips it, OverlapQueue
	// starts it once the previous run finished.
	Overlap string
	// CatchUp says which due times missed while no engine ran the
	// schedule are run: CatchUpNone, CatchUpLast (the default), CatchUpAll.
	CatchUp string
	spec    cron.Schedule
}

// Overlap and catch-up policies.
const (
	OverlapSkip  = "skip"
	OverlapQueue = "queue"
	CatchUpNone  = "none"
	CatchUpLast  = "last"
	CatchUpAll   = "all"
)

// Next returns the schedule's first due time after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.spec.Next(t) }

// ScheduleGrace is how late an engine may see a due time and still run
// it as on time: due times older than ScheduleGrace when the engine
// started were missed, and the catch-up policy decides about them. A
// restart shorter than ScheduleGrace misses no run under any policy.
const ScheduleGrace = time.Minute

// maxCatchUp bounds the missed due times one pass runs (catch_up: all).
const maxCatchUp = 1000

// scheduleStatePlugin scopes the schedules' records in the store's plugin
// state; no plugin can have this name.
const scheduleStatePlugin = "_schedules"

// AttrScheduledAt is the due time of a run a schedule started.
const AttrScheduledAt = "scheduled_at"

// WithClock sets the clock timers, event timeouts and schedules read
// (default time.Now). Tests inject one.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.clock = now })
}

// WithSchedules sets whether the engine starts the runs of the registered
// workflows' schedules (default: when it resumes runs, see
// WithResumeOnStart).
func WithSchedules(on bool) Option { return optionFunc(func(o *options) { o.noSchedules = !on }) }

func (e *Engine) now() time.Time {
	if e.o.clock != nil {
		return e.o.clock()
	}
	return time.Now()
}

func (p *parser) schedule(v *yaml.Node) *Schedule {
	if v.Kind != yaml.MappingNode {
		p.errf(v.Line, "schedule: want a mapping with cron, overlap and catch_up")
		return nil
	}
	s := &Schedule{Overlap: OverlapSkip, CatchUp: CatchUpLast}
	ok := true
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, fv := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "cron":
			s.Cron = p.str(fv, "schedule cron")
			if s.Cron == "" {
				ok = false
				continue
			}
			expr := s.Cron
			if !strings.HasPrefix(expr, "CRON_TZ=") && !strings.HasPrefix(expr, "TZ=") {
				expr = "CRON_TZ=UTC " + expr
			}
			spec, err := cron.ParseStandard(expr)
			if err != nil {
				p.errf(fv.Line, "schedule: cron %q: %v", s.Cron, err)
				ok = false
				continue
			}
			s.spec = spec
		case "overlap":
			s.Overlap = p.str(fv, "schedule overlap")
			if s.Overlap != OverlapSkip && s.Overlap != OverlapQueue {
				p.errf(fv.Line, "schedule: overlap %q: want skip or queue", s.Overlap)
				ok = false
			}
		case "catch_up":
			s.CatchUp = p.str(fv, "schedule catch_up")
			if s.CatchUp != CatchUpNone && s.CatchUp != CatchUpLast && s.CatchUp != CatchUpAll {
				p.errf(fv.Line, "schedule: catch_up %q: want none, last or all", s.CatchUp)
				ok = false
			}
		default:
			p.errf(k.Line, "schedule: unknown key %q (want cron, overlap, catch_up)", k.Value)
			ok = false
		}
	}
	if s.Cron == "" && ok {
		p.errf(v.Line, "schedule: cron is missing")
	}
	if !ok || s.spec == nil {
		return nil
	}
	return s
}

// scheduleState is a schedule's record in the store: the last due time
// it handled (fired or skipped) and its last run.
type scheduleState struct {
	Last time.Time `json:"last"`
	Run  string    `json:"run,omitempty"`
	Cron string    `json:"cron"`
}

// ScheduledRunID is the ID of the run a schedule of workflow starts for
// due time due.
func ScheduledRunID(workflow string, due time.Time) string {
	return "sched-" + workflow + "-" + due.UTC().Format("20060102T150405Z")
}

// scheduler fires the registered workflows' schedules every second until
// the engine stops.
func (e *Engine) scheduler(started time.Time) {
	defer e.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := e.fireSchedules(e.base, started); err != nil && e.base.Err() == nil {
			e.log.Warn("schedules not fired; trying again", "err", err)
		}
		select {
		case <-e.stopping:
			return
		case <-t.C:
		}
	}
}

// fireSchedules starts the due runs of every registered schedule once.
// started is when the engine started: due times older than started minus
// ScheduleGrace were missed and follow the catch-up policy.
func (e *Engine) fireSchedules(ctx context.Context, started time.Time) error {
	var errs []error
	for _, w := range e.Workflows() {
		if w.Schedule == nil {
			continue
		}
		if err := e.fireSchedule(ctx, w, started); err != nil {
			errs = append(errs, fmt.Errorf("schedule of %s: %w", w.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) fireSchedule(ctx context.Context, w *Workflow, started time.Time) error {
	s := w.Schedule
	now := e.now()
	var st scheduleState
	b, err := e.store.StateGet(ctx, scheduleStatePlugin, w.Name)
	switch {
	case errors.Is(err, statestore.ErrNotFound):
		// A new schedule: its first due time is the next one.
		return e.saveSchedule(ctx, w.Name, scheduleState{Last: now, Cron: s.Cron})
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	var due []time.Time
	for t := s.Next(st.Last); !t.After(now) && len(due) < maxCatchUp; t = s.Next(t) {
		due = append(due, t)
	}
	if len(due) == 0 {
		return nil
	}
	// Due times before the engine started (less the grace) were missed.
	missed := 0
	for missed < len(due) && due[missed].Before(started.Add(-ScheduleGrace)) {
		missed++
	}
	if missed > 0 {
		var keep []time.Time
		switch s.CatchUp {
		case CatchUpLast:
			keep = due[missed-1 : missed]
		case CatchUpAll:
			keep = due[:missed]
		}
		if len(keep) < missed {
			e.log.Info("schedule: missed due times skipped", "workflow", w.Name, "catch_up", s.CatchUp,
				"skipped", missed-len(keep), "from", due[0], "to", due[missed-1])
		}
		lastMissed := due[missed-1]
		due = append(keep, due[missed:]...)
		if len(due) == 0 {
			st.Last = lastMissed
			return e.saveSchedule(ctx, w.Name, st)
		}
	}
	// Overlap: skip compares with the run started before this pass (the
	// missed due times a catch-up starts do not skip each other); queue
	// starts one run at a time.
	before := st.Run
	for _, t := range due {
		prevID := st.Run
		if s.Overlap == OverlapSkip {
			prevID = before
		}
		if prevID != "" {
			prev, err := e.store.GetRun(ctx, prevID)
			if err != nil && !errors.Is(err, statestore.ErrNotFound) {
				return err
			}
			if err == nil && !prev.Status.Finished() {
				if s.Overlap == OverlapQueue {
					break // this due time waits for the previous run
				}
				e.log.Info("schedule: due time skipped, its previous run is unfinished", "workflow", w.Name,
					"due", t, "run_id", prevID)
				st.Last = t
				if err := e.saveSchedule(ctx, w.Name, st); err != nil {
					return err
				}
				continue
			}
		}
		id := ScheduledRunID(w.Name, t)
		input, _ := json.Marshal(map[string]string{AttrScheduledAt: t.UTC().Format(time.RFC3339)})
		if _, err := e.Submit(WithRunAttrs(ctx, map[string]string{AttrScheduledAt: t.UTC().Format(time.RFC3339)}), w.Name, input, id); err != nil {
			return fmt.Errorf("start run %s: %w", id, err)
		}
		st.Last, st.Run = t, id
		if err := e.saveSchedule(ctx, w.Name, st); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) saveSchedule(ctx context.Context, name string, st scheduleState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return e.store.StateSet(ctx, scheduleStatePlugin, name, b)
}

// ScheduleInfo is a schedule and what it did last.
type ScheduleInfo struct {
	Workflow string    `json:"workflow"`
	Cron     string    `json:"cron"`
	Overlap  string    `json:"overlap"`
	CatchUp  string    `json:"catch_up"`
	Last     time.Time `json:"last,omitzero"`
	LastRun  string    `json:"last_run,omitempty"`
	Next     time.Time `json:"next"`
}

// Schedules returns the registered workflows' schedules with the last due
// time each handled and the next one.
func (e *Engine) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	var out []ScheduleInfo
	for _, w := range e.Workflows() {
		s := w.Schedule
		if s == nil {
			continue
		}
		si := ScheduleInfo{Workflow: w.Name, Cron: s.Cron, Overlap: s.Overlap, CatchUp: s.CatchUp}
		b, err := e.store.StateGet(ctx, scheduleStatePlugin, w.Name)
		if err != nil && !errors.Is(err, statestore.ErrNotFound) {
			return nil, err
		}
		var st scheduleState
		if err == nil && json.Unmarshal(b, &st) == nil {
			si.Last, si.LastRun = st.Last, st.Run
		}
		from := si.Last
		if from.IsZero() {
			from = e.now()
		}
		si.Next = s.Next(from)
		out = append(out, si)
	}
	return out, nil
}
