package api

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// Signaller delivers external events to runs. When Deps.Workflows
// implements it (as *workflow.Engine does), POST
// /v1/runs/{id}/events/{name} delivers one; otherwise that endpoint
// answers 503.
type Signaller interface {
	Signal(ctx context.Context, runID, name, eventID string, data []byte) (workflow.SignalResult, error)
}

// signalRun serves POST /v1/runs/{id}/events/{name}?id=EVENT_ID: the body
// (JSON; empty is null) becomes the output of the run's nodes that wait
// for the event, once per event ID.
func (a *API) signalRun(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := CheckID("event name", name); err != nil {
		return err
	}
	eventID := r.URL.Query().Get("id")
	if eventID != "" {
		if err := CheckID("event ID", eventID); err != nil {
			return err
		}
	}
	data, err := readBody(r)
	if err != nil {
		return err
	}
	return a.byID(w, r, "run ID", func(wf Workflows, id string) (any, error) {
		s, ok := wf.(Signaller)
		if !ok {
			return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this engine takes no events")
		}
		return s.Signal(r.Context(), id, name, eventID, data)
	})
}

// Signal delivers the event name with the JSON payload data to a run,
// once per eventID ("": the server picks one).
func (c *Client) Signal(ctx context.Context, runID, name, eventID string, data []byte) (workflow.SignalResult, error) {
	var out workflow.SignalResult
	path := "/v1/runs/" + url.PathEscape(runID) + "/events/" + url.PathEscape(name)
	if eventID != "" {
		path += "?id=" + url.QueryEscape(eventID)
	}
	err := c.do(ctx, "POST", path, bytes.NewReader(data), "application/json", &out)
	return out, err
}
