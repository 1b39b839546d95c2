package xabi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gobwas/glob"
)

// Guest HTTP (http_request, http_status_code, http_headers) is implemented
// here for both engines, with the client the host passes in Config: the
// native engine exports these functions from its "extism:host/env"; for
// the go-sdk engine, whose own http_request always uses
// http.DefaultClient, the module's imports of them are renamed to
// httpModule at compile time and served by the same code.

// httpModule is where the go-sdk engine's guests find the HTTP functions.
const httpModule = "bulkhead:extism/http"

// httpFuncs are the Extism imports served from httpModule.
var httpFuncs = map[string]bool{"http_request": true, "http_status_code": true, "http_headers": true}

// DefaultMaxHTTPResponse bounds a guest's HTTP response body (Extism's
// default).
const DefaultMaxHTTPResponse = 50 << 20

// kernelAccess is what the HTTP functions need of the kernel memory, with
// go-sdk's semantics: readBytes of a handle that names no block is empty.
type kernelAccess interface {
	readBytes(h uint64) ([]byte, error)
	write(b []byte) (uint64, error)
	free(h uint64)
}

// httpState is an instance's last HTTP response.
type httpState struct {
	status  int
	headers map[string]string
}

type httpRequestJSON struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Method  string            `json:"method"`
}

// httpRequest is Extism's http_request: the same checks, messages and
// traps as go-sdk's, sent with cfg.HTTPClient.
func httpRequest(ctx context.Context, m kernelAccess, st *httpState, cfg *Config, reqH, bodyH uint64) uint64 {
	clear(st.headers)
	st.status = 0
	reqJSON, err := m.readBytes(reqH)
	if err != nil {
		panic(fmt.Errorf("failed to read http request from memory: %v", err))
	}
	var r httpRequestJSON
	err = json.Unmarshal(reqJSON, &r)
	m.free(reqH)
	if err != nil {
		panic(fmt.Errorf("invalid http request: %v", err))
	}
	if r.Method == "" {
		r.Method = "GET"
	}
	r.Method = strings.ToUpper(r.Method)
	u, err := url.Parse(r.URL)
	if err != nil {
		panic(fmt.Errorf("invalid url: %v", err))
	}
	if !hostAllowed(cfg.AllowedHosts, u.Hostname()) {
		panic(fmt.Errorf("HTTP request to '%v' is not allowed", r.URL))
	}
	var body io.Reader
	if bodyH != 0 {
		b, err := m.readBytes(bodyH)
		if err != nil {
			panic("failed to read response body from memory")
		}
		m.free(bodyH)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		panic(err)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	client := cfg.HTTPClient
	if client == nil {
		panic(errors.New("guest HTTP is not available on this host"))
	}
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if st.headers == nil {
		st.headers = map[string]string{}
	}
	for k, v := range resp.Header {
		st.headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	st.status = resp.StatusCode
	max := cfg.MaxHTTPResponse
	if max <= 0 {
		max = DefaultMaxHTTPResponse
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, resp.Body, max))
	if err != nil {
		panic(err)
	}
	if len(data) == 0 {
		return 0
	}
	h, err := m.write(data)
	if err != nil {
		panic("Failed to write resposne body to memory")
	}
	return h
}

// httpHeaders is Extism's http_headers: the last response's headers as a
// JSON object of lower-case names, or 0 before any response.
func httpHeaders(m kernelAccess, st *httpState) uint64 {
	if st.headers == nil {
		return 0
	}
	data, err := json.Marshal(st.headers)
	if err != nil {
		panic(err)
	}
	h, err := m.write(data)
	if err != nil {
		panic(err)
	}
	return h
}

// hostAllowed matches go-sdk: the exact name, else the entry as a
// gobwas/glob pattern (an entry that is not a valid pattern traps, as
// go-sdk's MustCompile panics).
func hostAllowed(allowed []string, name string) bool {
	for _, a := range allowed {
		if a == name || glob.MustCompile(a).Match(name) {
			return true
		}
	}
	return false
}

// renameImports returns wasm with the function imports of module from
// whose names are in names moved to module to. Everything else is copied
// unchanged.
func renameImports(wasm []byte, from string, names map[string]bool, to string) ([]byte, error) {
	if len(wasm) < 8 {
		return nil, errors.New("module too short")
	}
	out := append([]byte(nil), wasm[:8]...)
	p := 8
	for p < len(wasm) {
		id := wasm[p]
		size, n, err := uleb(wasm[p+1:])
		if err != nil {
			return nil, err
		}
		start := p + 1 + n
		end := start + int(size)
		if end > len(wasm) || end < start {
			return nil, errors.New("section past the end")
		}
		if id != 2 {
			out = append(out, wasm[p:end]...)
			p = end
			continue
		}
		body, err := renameInSection(wasm[start:end], from, names, to)
		if err != nil {
			return nil, fmt.Errorf("import section: %w", err)
		}
		out = append(out, 2)
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
		p = end
	}
	return out, nil
}

func renameInSection(s []byte, from string, names map[string]bool, to string) ([]byte, error) {
	count, n, err := uleb(s)
	if err != nil {
		return nil, err
	}
	out := appendULEB(nil, count)
	p := n
	str := func() (string, error) {
		l, n, err := uleb(s[p:])
		if err != nil {
			return "", err
		}
		if p+n+int(l) > len(s) || int(l) < 0 {
			return "", errors.New("name past the end")
		}
		v := string(s[p+n : p+n+int(l)])
		p += n + int(l)
		return v, nil
	}
	skipULEB := func() error {
		_, n, err := uleb(s[p:])
		p += n
		return err
	}
	need := func(k int) error {
		if p+k > len(s) {
			return errors.New("import past the end")
		}
		return nil
	}
	for range count {
		mod, err := str()
		if err != nil {
			return nil, err
		}
		name, err := str()
		if err != nil {
			return nil, err
		}
		if err := need(1); err != nil {
			return nil, err
		}
		kind := s[p]
		descStart := p
		p++
		switch kind {
		case 0: // function
			err = skipULEB()
		case 1: // table: reference type, limits
			if err = need(2); err == nil {
				p++
				flags := s[p]
				p++
				if err = skipULEB(); err == nil && flags&1 != 0 {
					err = skipULEB()
				}
			}
		case 2: // memory: limits
			if err = need(1); err == nil {
				flags := s[p]
				p++
				if err = skipULEB(); err == nil && flags&1 != 0 {
					err = skipULEB()
				}
			}
		case 3: // global: value type, mutability
			err = need(2)
			p += 2
		case 4: // tag: attribute, type
			if err = need(1); err == nil {
				p++
				err = skipULEB()
			}
		default:
			return nil, fmt.Errorf("unknown import kind %d", kind)
		}
		if err != nil {
			return nil, err
		}
		if kind == 0 && mod == from && names[name] {
			mod = to
		}
		out = appendULEB(out, uint64(len(mod)))
		out = append(out, mod...)
		out = appendULEB(out, uint64(len(name)))
		out = append(out, name...)
		out = append(out, s[descStart:p]...)
	}
	if p != len(s) {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

func uleb(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad LEB128 number")
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
