package workflow

import (
	"context"
	"log/slog"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// slog keys of the run events LogEvents writes.
const (
	keyRunID        = "run_id"
	keyWorkflow     = "workflow"
	keyNode         = "node"
	keyAttempt      = "attempt"
	keyVersion      = "version"
	keyErr          = "err"
	keyStatus       = "status"
	keyDelay        = "delay"
	keyDeadLetter   = "dead_letter"
	keyFrom         = "from"
	keyCheckpoint   = "checkpoint_seq"
	keyReplayedFrom = "replayed_from"
)

// LogEvents returns an observer (for WithObserver) that writes one log
// line per run event, each with the run ID and, for node events, the
// node: at info level a run accepted, started, resumed (with the nodes
// it resumes from), a node resumed from a checkpoint, retried (with the
// delay since the failed attempt) and a run finished; at warn level an
// attempt failed (with its number, plugin version and error), a node
// dead-lettered (with the dead letter's ID) and a run failed or paused by
// a store error; node starts, finishes, skips and checkpoint saves at
// debug level. A nil logger discards.
func LogEvents(l *slog.Logger) func(Event) { return LogEventsContext(l, nil) }

// LogEventsContext is LogEvents logging each event with the context
// ctxOf returns for it (nil: context.Background), so a handler can add
// what the context carries, such as trace and span IDs.
func LogEventsContext(l *slog.Logger, ctxOf func(Event) context.Context) func(Event) {
	if l == nil {
		return func(Event) {}
	}
	return func(ev Event) {
		ctx := context.Background()
		if ctxOf != nil {
			ctx = ctxOf(ev)
		}
		logEvent(ctx, l, ev)
	}
}

func logEvent(ctx context.Context, l *slog.Logger, ev Event) {
	level, msg := slog.LevelInfo, ""
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String(keyRunID, ev.RunID))
	if ev.Node != "" {
		attrs = append(attrs, slog.String(keyNode, ev.Node))
	}
	attrs = append(attrs, slog.String(keyWorkflow, ev.Workflow))
	switch ev.Kind {
	case EventRunAccepted:
		msg = "run accepted"
	case EventRunStarted:
		msg = "run started"
		if ev.Resumed {
			msg = "run resumed"
			attrs = append(attrs, slog.Any(keyFrom, ev.Ready))
		}
		if d := ev.Attrs[AttrReplayedFrom]; d != "" && ev.Resumed {
			attrs = append(attrs, slog.String(keyReplayedFrom, d))
		}
	case EventNodeStarted:
		level, msg = slog.LevelDebug, "node started"
		attrs = append(attrs, slog.Int(keyAttempt, ev.Attempt))
	case EventNodeFinished:
		level, msg = slog.LevelDebug, "node finished"
		attrs = append(attrs, slog.Int(keyAttempt, ev.Attempt))
	case EventNodeSkipped:
		level, msg = slog.LevelDebug, "node already journaled"
	case EventNodeBypassed:
		level, msg = slog.LevelDebug, "node skipped by its condition"
	case EventCheckpointSaved:
		level, msg = slog.LevelDebug, "checkpoint saved"
		attrs = append(attrs, slog.Uint64(keyCheckpoint, ev.Seq))
	case EventCheckpointLoaded:
		msg = "node resumed from checkpoint"
		attrs = append(attrs, slog.Uint64(keyCheckpoint, ev.Seq), slog.Int(keyAttempt, ev.Attempt))
	case EventAttemptFailed:
		level, msg = slog.LevelWarn, "node attempt failed"
		attrs = append(attrs, slog.Int(keyAttempt, ev.Attempt), slog.String(keyVersion, ev.Version), slog.String(keyErr, ev.Err))
	case EventNodeRetried:
		msg = "node retried"
		attrs = append(attrs, slog.Int(keyAttempt, ev.Attempt), slog.String(keyDelay, ev.Delay.Round(time.Microsecond).String()))
	case EventNodeFailed:
		level, msg = slog.LevelWarn, "node dead-lettered"
		attrs = append(attrs, slog.String(keyDeadLetter, ev.DeadLetter), slog.String(keyVersion, ev.Version), slog.String(keyErr, ev.Err))
	case EventRunFinished:
		msg = "run finished"
		attrs = append(attrs, slog.String(keyStatus, string(ev.Status)))
		switch ev.Status {
		case statestore.StatusFailed:
			level = slog.LevelWarn
		case statestore.StatusRunning:
			level, msg = slog.LevelWarn, "run paused until the next start"
		}
		if ev.Err != "" {
			attrs = append(attrs, slog.String(keyErr, ev.Err))
		}
	default: // progress: too frequent for a log
		return
	}
	if !l.Enabled(ctx, level) {
		return
	}
	l.LogAttrs(ctx, level, msg, attrs...)
}
