package app

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps the spans.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][2]string // name → trace ID, parent span ID
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans[s.Name] = [2]string{hex.EncodeToString(s.TraceId), hex.EncodeToString(s.ParentSpanId)}
			}
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func (o *otlpReceiver) span(name string) ([2]string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.spans[name]
	return s, ok
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, bulkhead serve exports the spans
// of a run submitted with a traceparent to the collector, in the
// caller's trace.
func TestTracing_ExportsASubmittedRunInTheCallersTrace(t *testing.T) {
	recv := &otlpReceiver{spans: map[string][2]string{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	var logs syncBuffer
	s := startServiceLogging(t, func(c *config.Config) {
		wf := "name: ping\nnodes:\n  a: {plugin: tiny, function: noop}\n"
		if err := os.WriteFile(filepath.Join(c.WorkflowsDir, "ping.yaml"), []byte(wf), 0o644); err != nil {
			t.Fatal(err)
		}
	}, &logs)
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+s.addr+"/v1/workflows/ping/runs",
		strings.NewReader(`{"input": "hi"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %s", resp.Status)
	}
	waitUntil(t, "the run's spans at the collector", 30*time.Second, func() bool {
		_, run := recv.span("run ping")
		_, attempt := recv.span("attempt")
		return run && attempt
	})
	submit, _ := recv.span("submit ping")
	if submit != [2]string{traceID, callerSpan} {
		t.Errorf("submit span (trace, parent) = %v, want the caller's trace and span", submit)
	}
	for _, name := range []string{"run ping", "node a", "attempt"} {
		if s, _ := recv.span(name); s[0] != traceID {
			t.Errorf("span %q in trace %s, want %s", name, s[0], traceID)
		}
	}
	// The run's log lines carry its trace.
	waitUntil(t, "the run finished line", 10*time.Second, func() bool { return strings.Contains(logs.String(), `"msg":"run finished"`) })
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"run `) && !strings.Contains(line, `"trace_id":"`+traceID+`"`) {
			t.Errorf("run event without the run's trace_id: %s", line)
		}
	}
}

// syncBuffer is a log sink written by several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
