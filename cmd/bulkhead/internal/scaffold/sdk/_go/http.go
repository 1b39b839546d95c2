//go:build wasip1

package bulkhead

import (
	"encoding/json"
	"fmt"
)

// HTTPRequest is a request a node makes through the host. The host only
// sends it to hosts the plugin's manifest allows, through a circuit breaker
// per destination host; a request refused by an open breaker gets a 503.
type HTTPRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"-"`
}

// HTTPResponse is what came back.
type HTTPResponse struct {
	Status int
	Body   []byte
}

// Do sends r. A destination the manifest does not allow traps the call.
func (r HTTPRequest) Do() (HTTPResponse, error) {
	if r.Method == "" {
		r.Method = "GET"
	}
	meta, err := json.Marshal(r)
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("http request: %w", err)
	}
	req := writeBlock(meta) // the host frees it
	var body uint64
	if r.Body != nil {
		body = writeBlock(r.Body) // the host frees it
	}
	h := extismHTTPRequest(req, body)
	resp := HTTPResponse{Status: int(extismHTTPStatusCode())}
	if h != 0 {
		resp.Body = readBlock(h)
		extismFree(h)
	}
	return resp, nil
}
