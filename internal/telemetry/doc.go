// Package telemetry traces bulkhead runs with OpenTelemetry.
//
// A run is one trace. Submitting it opens a "submit WORKFLOW" span (a
// child of the caller's W3C traceparent, when the request had one) whose
// context is stored in the run's Attrs under AttrTraceParent, so every
// later execution of the run (after a restart, a Resume or a Replay)
// joins the same trace. Each execution is a "run WORKFLOW" span, each
// node execution a "node NAME" span under it, and each attempt an
// "attempt" span under that, with the plugin, its version, the attempt
// number, fuel, outcome, breaker state and the delay before a retry.
// Checkpoint saves and loads are events of the attempt; journal commits
// and dead letters are events of the run span. Guest HTTP requests carry
// the attempt's traceparent, and log lines written with a traced context
// get trace_id and span_id.
//
// # Use
//
//	t, err := telemetry.FromEnv(ctx, os.Getenv, opts...)  // off unless OTEL_* asks for it
//	if t.Enabled() {
//	    inv = t.Invoker(inv)                               // node and attempt spans
//	    observer = t.Observer(next)                        // run spans; next sees them in EventContext
//	    handler = t.Middleware(handler)                    // traceparent of API requests
//	    hostOpts = append(hostOpts, host.WithHTTPHeaders(t.InjectHeaders))
//	    logHandler = telemetry.LogHandler(logHandler)
//	}
//	defer t.Shutdown(ctx)
//
// New takes any trace.TracerProvider (tests use the SDK's in-memory
// exporter).
//
// # Configuration
//
// FromEnv reads the standard variables. Tracing is on when
// OTEL_TRACES_EXPORTER is "otlp" or an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and
// off when OTEL_SDK_DISABLED is "true" or OTEL_TRACES_EXPORTER is "none".
// Spans go to OTLP over HTTP (protobuf); the exporter reads the other
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, TLS, compression),
// the SDK reads OTEL_TRACES_SAMPLER*, OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES,
// and OTEL_SERVICE_NAME defaults to "bulkhead". Any other exporter or
// protocol is an error.
//
// # Concurrency and lifecycle
//
// All methods are safe for concurrent use. Shutdown ends the run spans of
// executions still open (an engine stopped mid-run; they are marked
// interrupted and continue in a new span on the next start), then flushes
// and stops the provider FromEnv made; it is idempotent.
package telemetry
