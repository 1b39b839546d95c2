package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const readySynopsis = "ready [--server URL] [--timeout DURATION]"

// runReady asks a service whether it is ready (GET /readyz): exit 0 when it
// answers 200, 1 when it answers otherwise or cannot be reached. It is the
// container image's health check, which has no curl.
func runReady(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("ready", readySynopsis, stdout, stderr)
	server := fs.String("server", "", "the service's `URL` (default $BULKHEAD_SERVER, else http://127.0.0.1:7070)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after `DURATION`")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 0 {
		fprintf(stderr, "bulkhead ready: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	base := *server
	if base == "" {
		base = os.Getenv("BULKHEAD_SERVER")
	}
	if base == "" {
		base = "http://127.0.0.1:7070"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fprintf(stderr, "bulkhead ready: --server wants http://HOST:PORT, got %q\n", base)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/readyz", nil)
	if err != nil {
		fprintf(stderr, "bulkhead ready: %v\n", err)
		return exitUsage
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		fprintf(stderr, "bulkhead ready: %s is not reachable: %v\n", base, err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		fprintf(stderr, "bulkhead ready: %s is not ready: %s %s\n", base, resp.Status, strings.TrimSpace(string(body)))
		return exitFailure
	}
	fprintf(stdout, "ready\n")
	return exitOK
}
