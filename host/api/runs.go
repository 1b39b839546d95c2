package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/bulkhead-run/bulkhead/statestore"
)

func itoa(n int) string { return strconv.Itoa(n) }

func (a *API) workflows() (Workflows, error) {
	if a.deps.Workflows == nil {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "the workflow engine is not running")
	}
	return a.deps.Workflows, nil
}

func (a *API) listWorkflows(w http.ResponseWriter, _ *http.Request) error {
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	ws := wf.Workflows()
	out := make([]WorkflowSummary, 0, len(ws))
	for _, d := range ws {
		out = append(out, WorkflowSummary{Name: d.Name, File: d.File, Nodes: d.Order, Output: d.Output})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"workflows": out})
}

// SubmitRequest is the body of POST /v1/workflows/{name}/runs.
type SubmitRequest struct {
	// Input is the run's input: any JSON value, passed to the workflow as
	// its JSON text.
	Input json.RawMessage `json:"input,omitempty"`
	// RunID makes the submission idempotent: the same ID with the same
	// input returns the existing run; with another input, 409 conflict.
	RunID string `json:"run_id,omitempty"`
}

// SubmitResponse is the answer to a submission.
type SubmitResponse struct {
	RunID  string               `json:"run_id"`
	Status statestore.RunStatus `json:"status"`
}

func (a *API) submitRun(w http.ResponseWriter, r *http.Request) error {
	if a.Draining() {
		return ErrDraining
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	var req SubmitRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.RunID != "" {
		if err := CheckID("run_id", req.RunID); err != nil {
			return err
		}
	}
	if int64(len(req.Input)) > a.cfg.MaxRunInput {
		return Errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "run input of %d bytes is over the %d-byte limit", len(req.Input), a.cfg.MaxRunInput)
	}
	if err := checkName("workflow", CodeNotFound, r.PathValue("name")); err != nil {
		return err
	}
	run, err := wf.Submit(r.Context(), r.PathValue("name"), req.Input, req.RunID)
	if err != nil {
		return err
	}
	if a.deps.Metrics != nil {
		a.deps.Metrics.submitted.Inc()
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID)
	return writeJSON(w, http.StatusAccepted, SubmitResponse{RunID: run.ID, Status: run.Status})
}

// RunPage is a page of runs; pass Next as ?after= for the next one.
type RunPage struct {
	Runs []statestore.Run `json:"runs"`
	Next string           `json:"next,omitempty"`
}

func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1000 {
		return 0, Errorf(http.StatusBadRequest, CodeBadRequest, "limit must be an integer in [0,1000], got %q", truncate(s, 32))
	}
	return n, nil
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request) error {
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := statestore.RunFilter{Status: statestore.RunStatus(q.Get("status")), After: q.Get("after"), Newest: q.Get("newest") == "true"}
	if f.Status != "" && !f.Status.Valid() {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "unknown status %q", truncate(string(f.Status), 64))
	}
	if f.After != "" {
		// A cursor is 16 hex digits, a dot and a run ID.
		if err := checkToken("after", f.After, 17+MaxIDLen); err != nil {
			return err
		}
	}
	if f.Limit, err = limitParam(r); err != nil {
		return err
	}
	runs, next, err := wf.List(r.Context(), f)
	if err != nil {
		return err
	}
	if runs == nil {
		runs = []statestore.Run{}
	}
	return writeJSON(w, http.StatusOK, RunPage{Runs: runs, Next: next})
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request) error {
	return a.byID(w, r, "run ID", func(wf Workflows, id string) (any, error) { return wf.Get(r.Context(), id) })
}

func (a *API) cancelRun(w http.ResponseWriter, r *http.Request) error {
	return a.byID(w, r, "run ID", func(wf Workflows, id string) (any, error) { return wf.Cancel(r.Context(), id) })
}

// byID serves a request about one run or dead letter: it checks the ID in
// the path, finds the engine and writes what do returns.
func (a *API) byID(w http.ResponseWriter, r *http.Request, what string, do func(wf Workflows, id string) (any, error)) error {
	id := r.PathValue("id")
	if err := CheckID(what, id); err != nil {
		return err
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	v, err := do(wf, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (a *API) resumeRun(w http.ResponseWriter, r *http.Request) error {
	if a.Draining() {
		return ErrDraining
	}
	if err := CheckID("run ID", r.PathValue("id")); err != nil {
		return err
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	run, err := wf.Resume(r.Context(), r.PathValue("id"), r.URL.Query().Get("upgrade") == "true")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, run)
}

// CheckpointView is one checkpoint in GET /v1/runs/{id}/checkpoints.
type CheckpointView struct {
	Node      string `json:"node"`
	Seq       uint64 `json:"seq"`
	Size      int    `json:"size"`
	Data      []byte `json:"data,omitempty"`
	CreatedAt string `json:"created_at"`
}

func (a *API) runCheckpoints(w http.ResponseWriter, r *http.Request) error {
	if err := CheckID("run ID", r.PathValue("id")); err != nil {
		return err
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	node := r.URL.Query().Get("node")
	if node != "" {
		if err := CheckID("node", node); err != nil {
			return err
		}
	}
	cps, err := wf.Checkpoints(r.Context(), r.PathValue("id"), node)
	if err != nil {
		return err
	}
	withData := r.URL.Query().Get("data") == "true"
	out := make([]CheckpointView, 0, len(cps))
	for _, c := range cps {
		v := CheckpointView{Node: c.Node, Seq: c.Seq, Size: len(c.Data), CreatedAt: c.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
		if withData {
			v.Data = c.Data
		}
		out = append(out, v)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"checkpoints": out})
}

// DeadLetterPage is a page of dead letters; pass Next as ?after=.
type DeadLetterPage struct {
	DeadLetters []statestore.DeadLetter `json:"dead_letters"`
	Next        string                  `json:"next,omitempty"`
}

func (a *API) listDLQ(w http.ResponseWriter, r *http.Request) error {
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := statestore.DeadLetterFilter{RunID: q.Get("run_id"), After: q.Get("after")}
	for _, p := range []struct{ what, v string }{{"run_id", f.RunID}, {"after", f.After}} {
		if p.v == "" {
			continue
		}
		if err := CheckID(p.what, p.v); err != nil {
			return err
		}
	}
	if f.Limit, err = limitParam(r); err != nil {
		return err
	}
	dls, next, err := wf.DeadLetters(r.Context(), f)
	if err != nil {
		return err
	}
	if dls == nil {
		dls = []statestore.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, DeadLetterPage{DeadLetters: dls, Next: next})
}

func (a *API) getDLQ(w http.ResponseWriter, r *http.Request) error {
	return a.byID(w, r, "dead-letter ID", func(wf Workflows, id string) (any, error) { return wf.DeadLetter(r.Context(), id) })
}

func (a *API) replayDLQ(w http.ResponseWriter, r *http.Request) error {
	if a.Draining() {
		return ErrDraining
	}
	if err := CheckID("dead-letter ID", r.PathValue("id")); err != nil {
		return err
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	run, err := wf.Replay(r.Context(), r.PathValue("id"), r.URL.Query().Get("upgrade") == "true")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, SubmitResponse{RunID: run.ID, Status: run.Status})
}

func (a *API) deleteDLQ(w http.ResponseWriter, r *http.Request) error {
	if err := CheckID("dead-letter ID", r.PathValue("id")); err != nil {
		return err
	}
	wf, err := a.workflows()
	if err != nil {
		return err
	}
	if err := wf.DeleteDeadLetter(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
