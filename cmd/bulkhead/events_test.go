package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
)

// testServeEvents follows a run on GET /v1/events of the real service,
// then stops the service with the stream still open: the stream ends and
// the stream does not hold the shutdown up.
func testServeEvents(t *testing.T, bin string) {
	dir := svcDir(t, map[string]string{"chain": chainFlow})
	s := startService(t, bin, dir, "--grace-period", "2s")
	if code, _ := s.get("/v1/events", ""); code != 401 {
		t.Errorf("events without a token: %d", code)
	}
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/v1/events?run_id=ev-1", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := s.client.Submit(context.Background(), "chain", json.RawMessage(`{}`), "ev-1"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var kinds []string
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev api.EventView
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind+":"+ev.Status)
		if ev.Kind == "run_finished" {
			break
		}
	}
	if got := strings.Join(kinds, " "); !strings.HasPrefix(got, "run_accepted:running run_started:running") || !strings.HasSuffix(got, "run_finished:succeeded") {
		t.Errorf("events of ev-1: %s", got)
	}

	exit, took := s.stop(syscall.SIGTERM, 30*time.Second)
	if exit != 0 || took > 10*time.Second {
		t.Errorf("exit %d after %s with a stream open:\n%s", exit, took, s.logText())
	}
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if !strings.Contains(rest.String(), "event: shutdown") {
		t.Errorf("the stream ended without a shutdown message: %q", rest.String())
	}
}
