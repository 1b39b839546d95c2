package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Client talks to a running `bulkhead serve`. Failures the server
// reports are *Error values (match Code). Safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client of the server at baseURL ("http://host:port"),
// sending token when not empty. hc nil uses a client with a 5-minute
// timeout.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: server URL %q: want http://HOST:PORT or https://…", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: hc}, nil
}

// ServerFromEnv returns the server a CLI command should talk to: flag
// when set, else $BULKHEAD_SERVER; "" means open the data directory
// directly. The token comes from $BULKHEAD_TOKEN, else the file named by
// $BULKHEAD_TOKEN_FILE.
func ServerFromEnv(flag string) (*Client, error) {
	base := flag
	if base == "" {
		base = os.Getenv("BULKHEAD_SERVER")
	}
	if base == "" {
		return nil, nil
	}
	tok := os.Getenv("BULKHEAD_TOKEN")
	if tok == "" {
		if f := os.Getenv("BULKHEAD_TOKEN_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("api: token: %w", err)
			}
			tok = strings.TrimSpace(string(b))
		}
	}
	return NewClient(base, tok, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	_, err := c.raw(ctx, method, path, body, ctype, out)
	return err
}

// raw sends a request; a 2xx JSON body is decoded into out (when out is a
// *[]byte it gets the raw body).
func (c *Client) raw(ctx context.Context, method, path string, body io.Reader, ctype string, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return resp.Header, eb.Error
		}
		return resp.Header, &Error{Status: resp.StatusCode, Code: CodeInternal, Message: strings.TrimSpace(string(b))}
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("api: decode %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	return bytes.NewReader(b), err
}

// Plugins lists the plugins as the server reports them.
func (c *Client) Plugins(ctx context.Context) ([]PluginStatus, error) {
	var out struct {
		Plugins []PluginStatus `json:"plugins"`
	}
	err := c.do(ctx, "GET", "/v1/plugins", nil, "", &out)
	return out.Plugins, err
}

// Reload reloads a plugin from disk and returns its new status.
func (c *Client) Reload(ctx context.Context, name string) (PluginStatus, error) {
	var out PluginStatus
	err := c.do(ctx, "POST", "/v1/plugins/"+url.PathEscape(name)+"/reload", nil, "", &out)
	return out, err
}

// CallResult is the output of a plugin call and what the server said
// about it.
type CallResult struct {
	Output   []byte
	Attempts int
	Version  string
	Fallback bool
}

// Call calls export fn ("" for run) of plugin with input.
func (c *Client) Call(ctx context.Context, plugin, fn string, input []byte) (CallResult, error) {
	path := "/v1/plugins/" + url.PathEscape(plugin) + "/call"
	if fn != "" {
		path += "?function=" + url.QueryEscape(fn)
	}
	var out []byte
	h, err := c.raw(ctx, "POST", path, bytes.NewReader(input), "application/octet-stream", &out)
	if err != nil {
		return CallResult{}, err
	}
	n, _ := strconv.Atoi(h.Get("Bulkhead-Attempts"))
	return CallResult{Output: out, Attempts: n, Version: h.Get("Bulkhead-Plugin-Version"), Fallback: h.Get("Bulkhead-Fallback") == "true"}, nil
}

// Workflows lists the registered workflows.
func (c *Client) Workflows(ctx context.Context) ([]json.RawMessage, error) {
	var out struct {
		Workflows []json.RawMessage `json:"workflows"`
	}
	err := c.do(ctx, "GET", "/v1/workflows", nil, "", &out)
	return out.Workflows, err
}

// Submit submits a run of workflow with input (a JSON value; nil for
// none) under runID ("" lets the server pick one).
func (c *Client) Submit(ctx context.Context, workflow string, input json.RawMessage, runID string) (SubmitResponse, error) {
	body, err := jsonBody(SubmitRequest{Input: input, RunID: runID})
	if err != nil {
		return SubmitResponse{}, err
	}
	var out SubmitResponse
	err = c.do(ctx, "POST", "/v1/workflows/"+url.PathEscape(workflow)+"/runs", body, "application/json", &out)
	return out, err
}

// Runs returns one page of runs.
func (c *Client) Runs(ctx context.Context, f statestore.RunFilter) (RunPage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Newest {
		q.Set("newest", "true")
	}
	var out RunPage
	err := c.do(ctx, "GET", "/v1/runs?"+q.Encode(), nil, "", &out)
	return out, err
}

// Run returns a run with per-node detail, decoded into out (for example
// a *workflow.RunInfo or a *json.RawMessage).
func (c *Client) Run(ctx context.Context, id string, out any) error {
	return c.do(ctx, "GET", "/v1/runs/"+url.PathEscape(id), nil, "", out)
}

// Cancel cancels a run.
func (c *Client) Cancel(ctx context.Context, id string) (statestore.Run, error) {
	var out statestore.Run
	err := c.do(ctx, "POST", "/v1/runs/"+url.PathEscape(id)+"/cancel", nil, "", &out)
	return out, err
}

// Resume resumes a run.
func (c *Client) Resume(ctx context.Context, id string, upgrade bool) (statestore.Run, error) {
	var out statestore.Run
	err := c.do(ctx, "POST", "/v1/runs/"+url.PathEscape(id)+"/resume?upgrade="+strconv.FormatBool(upgrade), nil, "", &out)
	return out, err
}

// Checkpoints lists a run's checkpoints (of one node when node is set).
func (c *Client) Checkpoints(ctx context.Context, runID, node string, withData bool) ([]CheckpointView, error) {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	if withData {
		q.Set("data", "true")
	}
	var out struct {
		Checkpoints []CheckpointView `json:"checkpoints"`
	}
	err := c.do(ctx, "GET", "/v1/runs/"+url.PathEscape(runID)+"/checkpoints?"+q.Encode(), nil, "", &out)
	return out.Checkpoints, err
}

// DeadLetters returns one page of dead letters.
func (c *Client) DeadLetters(ctx context.Context, f statestore.DeadLetterFilter) (DeadLetterPage, error) {
	q := url.Values{}
	if f.RunID != "" {
		q.Set("run_id", f.RunID)
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out DeadLetterPage
	err := c.do(ctx, "GET", "/v1/dlq?"+q.Encode(), nil, "", &out)
	return out, err
}

// DeadLetter returns one dead letter.
func (c *Client) DeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	var out statestore.DeadLetter
	err := c.do(ctx, "GET", "/v1/dlq/"+url.PathEscape(id), nil, "", &out)
	return out, err
}

// Replay resumes a dead letter's run from its node.
func (c *Client) Replay(ctx context.Context, id string, upgrade bool) (SubmitResponse, error) {
	var out SubmitResponse
	err := c.do(ctx, "POST", "/v1/dlq/"+url.PathEscape(id)+"/replay?upgrade="+strconv.FormatBool(upgrade), nil, "", &out)
	return out, err
}

// DeleteDeadLetter deletes a dead letter.
func (c *Client) DeleteDeadLetter(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/dlq/"+url.PathEscape(id), nil, "", nil)
}

// Breakers returns every executor's stats as the server encodes them
// (resilience.Stats, with the state as text).
func (c *Client) Breakers(ctx context.Context) (map[string]json.RawMessage, error) {
	var out struct {
		Breakers map[string]json.RawMessage `json:"breakers"`
	}
	err := c.do(ctx, "GET", "/v1/breakers", nil, "", &out)
	return out.Breakers, err
}

// HealthSummary is GET /v1/health as a client reads it.
type HealthSummary struct {
	Status     string            `json:"status"`
	Ready      bool              `json:"ready"`
	Reason     string            `json:"reason,omitempty"`
	Draining   bool              `json:"draining"`
	Components []json.RawMessage `json:"components"`
}

// Health returns readiness and the overall and per-component health; a
// service that is not ready answers 503 with the same body, which Health
// returns without error.
func (c *Client) Health(ctx context.Context) (HealthSummary, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/health", nil)
	if err != nil {
		return HealthSummary{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return HealthSummary{}, err
	}
	defer resp.Body.Close()
	var out HealthSummary
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		var eb errorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return out, eb.Error
		}
		return out, &Error{Status: resp.StatusCode, Code: CodeInternal, Message: resp.Status}
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Resilience returns the policies in force.
func (c *Client) Resilience(ctx context.Context) (ResilienceView, error) {
	var out ResilienceView
	err := c.do(ctx, "GET", "/v1/config/resilience", nil, "", &out)
	return out, err
}

// UpdateResilience changes policies.
func (c *Client) UpdateResilience(ctx context.Context, u ResilienceUpdate) (ResilienceView, error) {
	body, err := jsonBody(u)
	if err != nil {
		return ResilienceView{}, err
	}
	var out ResilienceView
	err = c.do(ctx, "PUT", "/v1/config/resilience", body, "application/json", &out)
	return out, err
}
