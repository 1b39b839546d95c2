package api_test

import (
	"bytes"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
)

// fuzzRoutes are the endpoints FuzzAPI_Requests drives: every one that
// takes an ID or a JSON body. The plugin call is left out: its 5xx answers
// are the guest's outcomes, not the API's.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/workflows/echo/runs"},
	{"POST", "/v1/workflows/ID/runs"},
	{"GET", "/v1/runs/ID"},
	{"POST", "/v1/runs/ID/cancel"},
	{"POST", "/v1/runs/ID/resume"},
	{"GET", "/v1/runs/ID/checkpoints?node=QID"},
	{"GET", "/v1/runs?after=QID&limit=2"},
	{"GET", "/v1/dlq/ID"},
	{"POST", "/v1/dlq/ID/replay"},
	{"DELETE", "/v1/dlq/ID"},
	{"GET", "/v1/dlq?run_id=QID&after=QID"},
	{"PUT", "/v1/config/resilience"},
}

var fuzzTypes = []string{"application/json", "", "text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded"}

// FuzzAPI_Requests sends any body and any ID to the API's endpoints, with
// and without a token. Whatever it sends, the answer is 2xx or 4xx (never
// a 5xx, never a panic) and its size is bounded.
func FuzzAPI_Requests(f *testing.F) {
	const maxBody = 64 << 10
	withToken := newFixture(f, api.Config{MaxBody: maxBody, MaxRunInput: maxBody / 2}, false)
	open := newFixture(f, api.Config{Token: noToken, MaxBody: maxBody, MaxRunInput: maxBody / 2}, false)
	long := strings.Repeat("a", 1000) // over every cap; 65,000 bytes is TestAPI_IDsAndBodies's
	f.Add(uint8(0), "", []byte(`{"input":{"n":1},"run_id":"run-1"}`), uint8(0), false)
	f.Add(uint8(0), "", []byte(`{"input":1} GARBAGE`), uint8(0), false)
	f.Add(uint8(0), "", []byte(`{"input":1}{"input":2}`), uint8(3), true)
	f.Add(uint8(0), "", []byte(`{"run_id":"`+long+`"}`), uint8(0), false)
	f.Add(uint8(0), "", []byte(`{"run_id":"a\u0000b"}`), uint8(0), false)
	f.Add(uint8(0), "", []byte(`{"input":1}`), uint8(2), true)
	f.Add(uint8(0), "", []byte(`{"input":`+strings.Repeat("[", 10000)), uint8(0), false)
	f.Add(uint8(1), "echo", []byte(`{}`), uint8(0), false)
	f.Add(uint8(1), long, []byte(``), uint8(1), false)
	f.Add(uint8(2), "run-1", []byte(nil), uint8(1), false)
	f.Add(uint8(2), long, []byte(nil), uint8(1), true)
	f.Add(uint8(2), "../../etc/passwd", []byte(nil), uint8(1), false)
	f.Add(uint8(3), "\x00\xff", []byte(nil), uint8(1), false)
	f.Add(uint8(5), "run-1", []byte(nil), uint8(1), false)
	f.Add(uint8(6), long, []byte(nil), uint8(1), false)
	f.Add(uint8(6), "0000000000000000.run-1", []byte(nil), uint8(1), false)
	f.Add(uint8(7), "ünïcode", []byte(nil), uint8(1), false)
	f.Add(uint8(9), long, []byte(nil), uint8(1), true)
	f.Add(uint8(10), "x", []byte(nil), uint8(1), false)
	f.Add(uint8(11), "", []byte(`{"policy":{"retry":{"max_attempts":5}}}`), uint8(0), false)
	f.Add(uint8(11), "", []byte(`{"policy":{"retry":{"max_attempts":-5}}} x`), uint8(0), false)
	f.Add(uint8(11), "", []byte(`{"plugin":"ghost","preset":"nope"}`), uint8(0), false)
	f.Fuzz(func(t *testing.T, route uint8, id string, body []byte, ctype uint8, noAuth bool) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		target := strings.ReplaceAll(r.path, "QID", url.QueryEscape(id))
		target = strings.ReplaceAll(target, "ID", url.PathEscape(id))
		req := httptest.NewRequest(r.method, target, bytes.NewReader(body))
		req.Host = "127.0.0.1:7070"
		if ct := fuzzTypes[int(ctype)%len(fuzzTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		a := withToken.a
		if noAuth {
			a = open.a
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { a.ServeHTTP(rec, req); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("hang %s %.200s body %.200q\n%s", r.method, target, body, buf[:n])
		}
		if rec.Code < 200 || rec.Code >= 500 {
			t.Fatalf("%s %.200s: %d %.500s", r.method, target, rec.Code, rec.Body.Bytes())
		}
		limit := 4*maxBody + 4096
		if rec.Code >= 300 {
			limit = 8 << 10
		}
		if rec.Body.Len() > limit {
			t.Fatalf("%s %.200s: %d with a %d-byte answer", r.method, target, rec.Code, rec.Body.Len())
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %.200s: %d error as %q", r.method, target, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}
