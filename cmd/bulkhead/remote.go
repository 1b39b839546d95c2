package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// The commands that read or change runs, dead letters, checkpoints and
// plugins work in one of two modes. With --server URL (or
// $BULKHEAD_SERVER) they are clients of a running `bulkhead serve`; without
// it they open the data directory themselves, which only works while no
// service holds it (the store is locked by one process at a time). Both
// modes print the same tables and JSON and exit with the same statuses;
// in client mode, a service that cannot be reached or refuses the token is
// a usage error (exit 2), like a data directory that cannot be opened.

// serverFlag registers --server on fs.
func serverFlag(fs *flag.FlagSet) *string {
	return fs.String("server", "", "talk to the service at `URL` (http://HOST:PORT) instead of opening the data directory (default $BULKHEAD_SERVER; token from $BULKHEAD_TOKEN or $BULKHEAD_TOKEN_FILE)")
}

// remote is a running service a command talks to.
type remote struct {
	cmd string // "runs ls", for messages
	url string
	c   *api.Client
}

// dialRemote returns the service the command talks to, or nil with exitOK
// when neither --server nor $BULKHEAD_SERVER is set and the command
// should open the data directory.
func dialRemote(cmd, server string, stderr io.Writer) (*remote, int) {
	base := server
	if base == "" {
		base = os.Getenv("BULKHEAD_SERVER")
	}
	c, err := api.ServerFromEnv(server)
	if err != nil {
		fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	if c == nil {
		return nil, exitOK
	}
	return &remote{cmd: cmd, url: base, c: c}, exitOK
}

// fail reports err, the failure of a request to the service, and returns
// the exit status: exitUsage when the service cannot be reached or refuses
// the token, exitFailure when interrupted, else code.
func (r *remote) fail(err error, code int, stderr io.Writer) int {
	var ae *api.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		hint := "set BULKHEAD_TOKEN (or BULKHEAD_TOKEN_FILE) to the service's token"
		if os.Getenv("BULKHEAD_TOKEN") == "" && os.Getenv("BULKHEAD_TOKEN_FILE") == "" {
			hint = "no token was sent: " + hint
		} else {
			hint = "the token was refused: " + hint
		}
		fprintf(stderr, "bulkhead %s: the service at %s answered 401 unauthorized; %s\n", r.cmd, r.url, hint)
		return exitUsage
	case errors.As(err, &ae):
		if ae.Status >= 500 {
			fprintf(stderr, "bulkhead %s: %s (HTTP %d %s from %s)\n", r.cmd, ae.Message, ae.Status, ae.Code, r.url)
		} else {
			fprintf(stderr, "bulkhead %s: %s\n", r.cmd, ae.Message)
		}
		return code
	case errors.Is(err, context.Canceled):
		fprintf(stderr, "bulkhead %s: interrupted\n", r.cmd)
		return exitFailure
	case errors.As(err, &ue):
		fprintf(stderr, "bulkhead %s: cannot reach the service at %s: %v (is `bulkhead serve` running there? --server or $BULKHEAD_SERVER names it)\n", r.cmd, r.url, ue.Err)
		return exitUsage
	}
	fprintf(stderr, "bulkhead %s: %s: %v\n", r.cmd, r.url, err)
	return code
}

// httpStatus is the HTTP status of the service's answer err, else 0.
func httpStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// notFound reports whether err is the service's 404.
func notFound(err error) bool { return httpStatus(err) == http.StatusNotFound }

// await polls run id until it finishes, then prints its output or failure
// like a run in the foreground and returns the exit status. An interrupt
// stops the waiting, not the run.
func (r *remote) await(ctx context.Context, id string, stdout, stderr io.Writer) int {
	delay := 20 * time.Millisecond
	for {
		run, err := r.c.Run(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				fprintf(stderr, "bulkhead %s: interrupted; run %s goes on in the service: bulkhead runs show %s --server %s\n", r.cmd, id, id, r.url)
				return exitFailure
			}
			return r.fail(err, exitFailure, stderr)
		}
		if run.Status.Finished() {
			return printFinished(r.cmd, run.Run, stdout, stderr)
		}
		select {
		case <-ctx.Done():
			fprintf(stderr, "bulkhead %s: interrupted; run %s goes on in the service: bulkhead runs show %s --server %s\n", r.cmd, id, id, r.url)
			return exitFailure
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// printFinished prints a finished run's output (stdout) or failure
// (stderr) and returns the exit status, as runtime.await does.
func printFinished(cmd string, r statestore.Run, stdout, stderr io.Writer) int {
	switch r.Status {
	case statestore.StatusSucceeded:
		stdout.Write(r.Output)
		return exitOK
	case statestore.StatusFailed:
		fprintf(stderr, "bulkhead %s: run %s failed: %s\n", cmd, r.ID, r.Error)
		if dl := r.Attrs[workflow.AttrDeadLetter]; dl != "" {
			fprintf(stderr, "dead letter: %s (inspect: bulkhead dlq show %s; replay: bulkhead dlq replay %s)\n", dl, dl, dl)
		}
		return exitFailure
	}
	fprintf(stderr, "bulkhead %s: run %s was cancelled\n", cmd, r.ID)
	return exitFailure
}
