package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// Guest HTTP requests (Extism's http_request) go through a circuit breaker
// per destination host, named "http:HOST", so a guest hammering a dead API
// is stopped too. go-sdk sends those requests with http.DefaultClient, so
// the first Host wraps that client's transport once per process; requests
// that do not come from a guest call pass through untouched.
//
// A request refused by an open breaker gets a 503 response with a
// Retry-After header instead of a trap, so the guest can fail (or fall
// back) the way it would for the real service. 5xx responses and transport
// errors count as failures; the request itself is never retried by the host
// (only the guest knows whether it is idempotent).

// HTTPPolicyName is the executor name of a destination host's breaker.
func HTTPPolicyName(hostname string) string { return "http:" + hostname }

var installTransport sync.Once

func installGuestTransport() {
	installTransport.Do(func() {
		base := http.DefaultClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		http.DefaultClient.Transport = &guestTransport{base: base}
	})
}

type guestTransport struct{ base http.RoundTripper }

// statusError carries a 5xx response through the executor as a failure.
type statusError struct{ resp *http.Response }

func (e *statusError) Error() string { return "HTTP " + e.resp.Status }

func (t *guestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callKey{}).(*callState)
	if st == nil || st.host == nil {
		return t.base.RoundTrip(req)
	}
	h := st.host
	name := HTTPPolicyName(req.URL.Hostname())
	e, err := h.execs.GetOrCreate(name, h.opts.httpPolicy)
	if err != nil {
		return nil, err
	}
	var resp *http.Response
	err = e.Do(req.Context(), func(ctx context.Context) error {
		r, err := t.base.RoundTrip(req)
		if err != nil {
			return err
		}
		if r.StatusCode >= 500 {
			return &statusError{resp: r}
		}
		resp = r
		return nil
	})
	var se *statusError
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &se):
		return se.resp, nil
	case errors.Is(err, resilience.ErrCircuitOpen):
		return circuitOpenResponse(req, name, e.Policy().Breaker.OpenTimeout), nil
	}
	return nil, err
}

func circuitOpenResponse(req *http.Request, name string, wait resilience.Duration) *http.Response {
	body := fmt.Sprintf("bulkhead: circuit open for %s after repeated failures", name)
	retry := time.Duration(wait)
	if retry <= 0 {
		retry = resilience.DefaultOpenTimeout
	}
	return &http.Response{
		Status:        "503 Service Unavailable",
		StatusCode:    http.StatusServiceUnavailable,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Retry-After": {strconv.Itoa(int(retry.Seconds()))}, "Content-Type": {"text/plain"}},
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// defaultHTTPPolicy: one attempt, a breaker that opens after 5 consecutive
// failures and half-opens after 30 s.
func defaultHTTPPolicy() resilience.Policy {
	var p resilience.Policy
	p.Retry.MaxAttempts = 1
	return p
}
