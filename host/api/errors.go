package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Error codes: stable, documented in the OpenAPI document; clients match
// them rather than messages.
const (
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong bearer token
	CodeNotFound         = "not_found"          // 404: no such route, run, dead letter or workflow
	CodePluginNotFound   = "plugin_not_found"   // 404: no such plugin loaded
	CodeExportNotFound   = "export_not_found"   // 404: the plugin has no such export
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeBadRequest       = "bad_request"        // 400: malformed body or parameter
	CodeConflict         = "conflict"           // 409: run ID reused with another input, run finished
	CodeBodyTooLarge     = "body_too_large"     // 413: body or run input over its limit
	CodePermanent        = "permanent_failure"  // 422: the plugin refused the input; retrying cannot help
	CodePluginFailed     = "plugin_failed"      // 502: the plugin failed after every attempt
	CodeCircuitOpen      = "circuit_open"       // 503: the plugin's breaker is open
	CodeLimited          = "limited"            // 503: the plugin's concurrency limit is reached
	CodeDraining         = "draining"           // 503: the service is shutting down
	CodeUnavailable      = "unavailable"        // 503: a component is not running
	CodeTimeout          = "timeout"            // 504: the call reached its deadline
	CodeNoSpace          = "no_space"           // 507: the store's disk is (nearly) full
	CodeInternal         = "internal"           // 500
)

// ErrDraining: the service is shutting down and takes no new work.
var ErrDraining = errors.New("api: draining")

// Error is an API error: its HTTP status, stable code and message. The
// body of every error response is {"error": {"code": …, "message": …}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf returns an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error *Error `json:"error"`
}

func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{e})
}

// ErrorMapper turns a component's own error into an API error; it returns
// nil for errors it does not know.
type ErrorMapper func(error) *Error

// toError classifies err (the mapping of call outcomes in the package doc).
func (a *API) toError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	if a.deps.MapError != nil {
		if e := a.deps.MapError(err); e != nil {
			return e
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body over the %d-byte limit", mbe.Limit)
	}
	cause := err
	var ex *resilience.ExhaustedError
	if errors.As(err, &ex) {
		if last := ex.Last(); last != nil {
			cause = last
		}
	}
	msg := err.Error()
	var le *host.LimitError
	var ge *host.GuestError
	var perm interface{ Permanent() bool }
	switch {
	case errors.Is(err, ErrDraining):
		return Errorf(http.StatusServiceUnavailable, CodeDraining, "%s", msg)
	case errors.Is(cause, resilience.ErrCircuitOpen):
		return Errorf(http.StatusServiceUnavailable, CodeCircuitOpen, "%s", msg)
	case errors.Is(cause, resilience.ErrLimited):
		return Errorf(http.StatusServiceUnavailable, CodeLimited, "%s", msg)
	case errors.Is(cause, statestore.ErrNoSpace):
		return Errorf(http.StatusInsufficientStorage, CodeNoSpace, "%s", msg)
	case errors.Is(cause, host.ErrClosed), errors.Is(cause, statestore.ErrClosed), errors.Is(cause, statestore.ErrUnavailable):
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "%s", msg)
	case errors.Is(cause, host.ErrNoPlugin):
		return Errorf(http.StatusNotFound, CodePluginNotFound, "%s", msg)
	case errors.Is(cause, host.ErrNoExport):
		return Errorf(http.StatusNotFound, CodeExportNotFound, "%s", msg)
	case errors.Is(cause, statestore.ErrNotFound):
		return Errorf(http.StatusNotFound, CodeNotFound, "%s", msg)
	case errors.Is(cause, statestore.ErrConflict):
		return Errorf(http.StatusConflict, CodeConflict, "%s", msg)
	case errors.Is(cause, statestore.ErrInvalid):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "%s", msg)
	case errors.As(cause, &le), errors.Is(cause, host.ErrPermanent):
		return Errorf(http.StatusUnprocessableEntity, CodePermanent, "%s", msg)
	case errors.Is(cause, host.ErrTimeout), errors.Is(cause, context.DeadlineExceeded):
		return Errorf(http.StatusGatewayTimeout, CodeTimeout, "%s", msg)
	case errors.As(cause, &ge):
		return Errorf(http.StatusBadGateway, CodePluginFailed, "%s", msg)
	case errors.As(cause, &perm) && perm.Permanent():
		return Errorf(http.StatusUnprocessableEntity, CodePermanent, "%s", msg)
	case ex != nil:
		return Errorf(http.StatusBadGateway, CodePluginFailed, "%s", msg)
	}
	return Errorf(http.StatusInternalServerError, CodeInternal, "%s", msg)
}
