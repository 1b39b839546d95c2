package api

import (
	"context"
	"net/http"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// Scheduler lists the schedules of the registered workflows. When
// Deps.Workflows implements it (as *workflow.Engine does), GET
// /v1/schedules lists them; otherwise that endpoint answers 503.
type Scheduler interface {
	Schedules(ctx context.Context) ([]workflow.ScheduleInfo, error)
}

// listSchedules serves GET /v1/schedules: every workflow's schedule with
// its policies, the last due time it handled, its last run and its next
// due time.
func (a *API) listSchedules(w http.ResponseWriter, r *http.Request) error {
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	s, ok := wf.(Scheduler)
	if !ok {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this engine runs no schedules")
	}
	out, err := s.Schedules(r.Context())
	if err != nil {
		return err
	}
	if out == nil {
		out = []workflow.ScheduleInfo{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

// Schedules lists the schedules of the service's workflows.
func (c *Client) Schedules(ctx context.Context) ([]workflow.ScheduleInfo, error) {
	var out struct {
		Schedules []workflow.ScheduleInfo `json:"schedules"`
	}
	err := c.do(ctx, "GET", "/v1/schedules", nil, "", &out)
	return out.Schedules, err
}
