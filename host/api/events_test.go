package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

const eventsFlow = `name: pair
nodes:
  a: {plugin: tiny, function: noop}
  b: {plugin: tiny, function: noop, needs: [a]}
`

// eventsFixture serves an API whose event stream is fed by a real engine
// running the tiny plugin.
func eventsFixture(t *testing.T) (*workflow.Engine, *api.Events, *httptest.Server) {
	t.Helper()
	h := hosttest.New(t)
	if _, err := h.Load(context.Background(), "tiny", hosttest.Fixture(t, "../host/testdata/tiny.wasm"), abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	es := api.NewEvents("host-1", 0)
	s := memstore.New()
	e, err := workflow.New(s, h, workflow.WithObserver(es.Publish))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("pair.yaml", []byte(eventsFlow), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: h, Events: es})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		es.Close()
		srv.Close()
		_ = e.Stop(context.Background())
		_ = s.Close()
	})
	return e, es, srv
}

// sse is an open event stream.
type sse struct {
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
}

func openEvents(t *testing.T, url, tok string) (*sse, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	s := &sse{resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return s, 200
}

// next returns the next message's event type ("" for the default) and
// data, skipping comments; ok is false at the end of the stream.
func (s *sse) next() (typ, data string, ok bool) {
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if data != "" {
				return typ, data, true
			}
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	return "", "", false
}

func TestEvents_RunLifecycle(t *testing.T) {
	e, _, srv := eventsFixture(t)
	if _, code := openEvents(t, srv.URL+"/v1/events", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	for _, q := range []string{"run_id=bad%20id", "kind=nope", "run_id=" + strings.Repeat("a,", 65)} {
		if _, code := openEvents(t, srv.URL+"/v1/events?"+q, token); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
	s, _ := openEvents(t, srv.URL+"/v1/events?run_id=watched", token)
	ctx := context.Background()
	// Another run, not asked for, goes first: the filter keeps it out.
	if _, err := e.Submit(ctx, "pair", nil, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(ctx, "pair", nil, "watched"); err != nil {
		t.Fatal(err)
	}
	var got []string
	lastID := uint64(0)
	for {
		typ, data, ok := s.next()
		if !ok {
			t.Fatalf("stream ended after %v", got)
		}
		if typ != "" {
			t.Fatalf("unexpected %s message: %s", typ, data)
		}
		var ev api.EventView
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.RunID != "watched" || ev.Host != "host-1" || ev.ID <= lastID || ev.Time == "" {
			t.Fatalf("event %+v after id %d", ev, lastID)
		}
		lastID = ev.ID
		step := ev.Kind
		if ev.Node != "" {
			step += ":" + ev.Node
		}
		if ev.Status != "" {
			step += ":" + ev.Status
		}
		got = append(got, step)
		if ev.Kind == string(workflow.EventRunFinished) {
			break
		}
	}
	want := "run_accepted:running run_started:running node_started:a node_finished:a node_started:b node_finished:b run_finished:succeeded"
	if strings.Join(got, " ") != want {
		t.Errorf("events:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestEvents_KindFilter(t *testing.T) {
	e, _, srv := eventsFixture(t)
	s, _ := openEvents(t, srv.URL+"/v1/events?kind=run_finished", token)
	for _, id := range []string{"k1", "k2"} {
		if _, err := e.Submit(context.Background(), "pair", nil, id); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		_, data, ok := s.next()
		if !ok {
			t.Fatal("stream ended")
		}
		var ev api.EventView
		_ = json.Unmarshal([]byte(data), &ev)
		if ev.Kind != "run_finished" {
			t.Fatalf("kind filter let %s through", ev.Kind)
		}
		seen[ev.RunID] = true
	}
}

// A stream outlives the server's read and write timeouts, ends when its
// client goes away, and ends at shutdown without holding the shutdown up.
func TestEvents_DisconnectAndShutdown(t *testing.T) {
	h := hosttest.New(t)
	es := api.NewEvents("h", 0)
	a, err := api.New(api.Config{Token: token}, api.Deps{Host: h, Events: es})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(api.ServerConfig{Addr: "127.0.0.1:0", ReadTimeout: 100 * time.Millisecond,
		WriteTimeout: 100 * time.Millisecond}, a, nil)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	url := "http://" + srv.Addr() + "/v1/events"

	gone, _ := openEvents(t, url, token)
	waitFor(t, "the subscriber", func() bool { return es.Subscribers() == 1 })
	gone.cancel()
	waitFor(t, "the disconnected stream to end", func() bool { return es.Subscribers() == 0 })

	s, _ := openEvents(t, url, token)
	time.Sleep(300 * time.Millisecond) // past both timeouts
	es.Publish(workflow.Event{Kind: workflow.EventRunFinished, RunID: "r", Status: "succeeded", Time: time.Now()})
	if typ, data, ok := s.next(); !ok || typ != "" || !strings.Contains(data, `"run_id":"r"`) {
		t.Fatalf("after the timeouts: %q %q %v", typ, data, ok)
	}

	// An event published just before Close still reaches the client.
	es.Publish(workflow.Event{Kind: workflow.EventRunFinished, RunID: "last", Status: "succeeded", Time: time.Now()})
	es.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s with a stream open", d)
	}
	if typ, data, ok := s.next(); !ok || typ != "" || !strings.Contains(data, `"run_id":"last"`) {
		t.Errorf("before the shutdown: %q %q %v", typ, data, ok)
	}
	if typ, _, ok := s.next(); !ok || typ != "shutdown" {
		t.Errorf("last message %q %v, want shutdown", typ, ok)
	}
	if _, _, ok := s.next(); ok {
		t.Error("stream goes on after shutdown")
	}
	if n := es.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after shutdown", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
