package badgerstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

const (
	logKeyDir     = "dir"
	logKeyRemoved = "removed"
	logKeyErr     = "err"
	logKeyRuns    = "runs"
	logKeyElapsed = "elapsed"
)

// badgerLogger routes Badger's log lines to a slog.Logger.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args ...any) {
	if b.l == nil || !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a...) }
