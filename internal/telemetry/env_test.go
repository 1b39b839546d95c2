package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestConfigured(t *testing.T) {
	tests := []struct {
		name    string
		give    map[string]string
		want    bool
		wantErr bool
	}{
		{name: "nothing set", give: map[string]string{}, want: false},
		{name: "endpoint", give: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: true},
		{name: "traces endpoint", give: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, want: true},
		{name: "exporter otlp", give: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "exporter none", give: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: false},
		{name: "sdk disabled", give: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: false},
		{name: "zipkin", give: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{name: "grpc", give: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: true},
		{name: "http/protobuf", give: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configured(func(k string) string { return tt.give[k] })
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("configured = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFromEnv_OffUnlessConfigured(t *testing.T) {
	tel, err := FromEnv(context.Background(), func(string) string { return "" })
	if err != nil || tel.Enabled() {
		t.Fatalf("FromEnv without OTEL_*: enabled %v, %v", tel.Enabled(), err)
	}
	tel, err = FromEnv(context.Background(), func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}[k]
	})
	if err != nil || !tel.Enabled() {
		t.Fatalf("FromEnv with an endpoint: enabled %v, %v", tel.Enabled(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil { // nothing to export; its goroutines stop
		t.Fatal(err)
	}
}

// Log lines written with a traced context carry trace_id and span_id;
// others do not.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("module", "x")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	log.InfoContext(ctx, "traced")
	log.Info("plain")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var traced, plain map[string]any
	if len(lines) != 2 || json.Unmarshal(lines[0], &traced) != nil || json.Unmarshal(lines[1], &plain) != nil {
		t.Fatalf("log %s", buf.Bytes())
	}
	sc := span.SpanContext()
	if traced["trace_id"] != sc.TraceID().String() || traced["span_id"] != sc.SpanID().String() || traced["module"] != "x" {
		t.Errorf("traced line %v, want trace %s span %s", traced, sc.TraceID(), sc.SpanID())
	}
	if _, ok := plain["trace_id"]; ok {
		t.Errorf("plain line %v has a trace_id", plain)
	}
}

// The middleware puts the request's traceparent into its context.
func TestMiddleware(t *testing.T) {
	tel := New(sdktrace.NewTracerProvider())
	var got trace.SpanContext
	h := tel.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = trace.SpanContextFromContext(r.Context())
	}))
	req := httptest.NewRequest("POST", "/v1/workflows/x/runs", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.SpanID().String() != "b7ad6b7169203331" || !got.IsRemote() {
		t.Errorf("span context %v", got)
	}
	req = httptest.NewRequest("POST", "/v1/workflows/x/runs", nil)
	req.Header.Set("traceparent", "garbage")
	got = trace.SpanContext{}
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got.IsValid() {
		t.Errorf("a malformed traceparent gave %v", got)
	}
}
