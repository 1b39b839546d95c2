package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// slowWriter is a client that reads nothing until released.
type slowWriter struct {
	hdr     http.Header
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *slowWriter) Header() http.Header { return w.hdr }
func (w *slowWriter) WriteHeader(int)     {}
func (w *slowWriter) Flush()              {}
func (w *slowWriter) Write(b []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *slowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var droppedRE = regexp.MustCompile(`event: dropped\ndata: \{"dropped":(\d+)\}`)

// A subscriber that does not read never holds the engine up: its buffer
// fills, the rest is dropped and counted, and it is told how many.
func TestEvents_SlowClientDropsAndIsTold(t *testing.T) {
	es := NewEvents("h", 8)
	a := &API{deps: Deps{Events: es}}
	w := &slowWriter{hdr: http.Header{}, release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/events", nil)
	done := make(chan error, 1)
	go func() { done <- a.events(w, req) }()
	deadline := time.Now().Add(10 * time.Second)
	for es.Subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no subscriber")
		}
		time.Sleep(time.Millisecond)
	}

	const n = 10000
	start := time.Now()
	for i := range n {
		es.Publish(workflow.Event{Kind: workflow.EventProgress, RunID: "r" + strconv.Itoa(i), Time: time.Now()})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publishing %d events to a stuck client took %s", n, d)
	}
	close(w.release)

	// Every event is either delivered or counted as dropped.
	var delivered, dropped int
	for time.Now().Before(deadline) {
		out := w.String()
		delivered, dropped = strings.Count(out, "\ndata: {\"id\":"), 0
		for _, m := range droppedRE.FindAllStringSubmatch(out, -1) {
			d, _ := strconv.Atoi(m[1])
			dropped += d
		}
		if delivered+dropped == n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if delivered+dropped != n || dropped == 0 || delivered > n-dropped {
		t.Fatalf("delivered %d + dropped %d, want %d with some dropped", delivered, dropped, n)
	}
	if delivered > 8+1 {
		t.Errorf("delivered %d with a buffer of 8 and a client stuck on its first write", delivered)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if es.Subscribers() != 0 {
		t.Error("subscriber left after the client went away")
	}
}

// BenchmarkEvents_Publish: what the event stream adds to each engine
// event, with no stream open (as most of the time) and with one whose
// client keeps up.
func BenchmarkEvents_Publish(b *testing.B) {
	ev := workflow.Event{Kind: workflow.EventNodeFinished, RunID: "run-1", Workflow: "w", Node: "n", Attempt: 1, Time: time.Now()}
	b.Run("subscribers=0", func(b *testing.B) {
		es := NewEvents("h", 0)
		b.ReportAllocs()
		for b.Loop() {
			es.Publish(ev)
		}
	})
	b.Run("subscribers=1", func(b *testing.B) {
		es := NewEvents("h", 0)
		sub, _ := es.subscribe(nil, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range sub.ch {
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			es.Publish(ev)
		}
		b.StopTimer()
		es.unsubscribe(sub)
		close(sub.ch)
		<-done
	})
}
