package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Error codes of the request checks.
const (
	CodeHostNotAllowed = "host_not_allowed"       // 403: the Host header names none of the service's names
	CodeCrossOrigin    = "cross_origin"           // 403: a browser request from another origin
	CodeMediaType      = "unsupported_media_type" // 415: a JSON endpoint got another content type
)

// MaxIDLen caps run and dead-letter IDs.
const MaxIDLen = 128

// guard holds the checks every request passes before its route.
type guard struct {
	// hosts are the names (lower case) the Host header may carry when no
	// token is set; nil with a token. ports maps a name to the one port it
	// is allowed with ("" for any).
	hosts map[string]string
	cop   *http.CrossOriginProtection
}

func newGuard(cfg Config) (*guard, error) {
	g := &guard{cop: http.NewCrossOriginProtection()}
	for _, n := range cfg.PublicNames {
		origins := []string{"http://" + n, "https://" + n}
		// A browser leaves the scheme's default port out of an origin.
		if h, port, err := net.SplitHostPort(n); err == nil && port == "80" {
			origins = append(origins, "http://"+h)
		} else if err == nil && port == "443" {
			origins = append(origins, "https://"+h)
		}
		for _, o := range origins {
			if err := g.cop.AddTrustedOrigin(o); err != nil {
				return nil, fmt.Errorf("api: public name %q: %w", n, err)
			}
		}
	}
	if cfg.Token != "" {
		return g, nil
	}
	g.hosts = map[string]string{"localhost": ""}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil && h != "" {
		g.hosts[strings.ToLower(h)] = ""
	}
	for _, n := range cfg.PublicNames {
		h, port, err := net.SplitHostPort(n)
		if err != nil {
			h, port = n, ""
		}
		g.hosts[strings.ToLower(h)] = port
	}
	return g, nil
}

// check refuses a request whose Host header the service does not answer
// to (without a token: DNS rebinding) and a state-changing request from
// another origin (CSRF).
func (g *guard) check(r *http.Request) *Error {
	if g.hosts != nil && !g.hostAllowed(r.Host) {
		return Errorf(http.StatusForbidden, CodeHostNotAllowed, "host %q is not a name of this service; add it to public_names", truncate(r.Host, 256))
	}
	if err := g.cop.Check(r); err != nil {
		return Errorf(http.StatusForbidden, CodeCrossOrigin, "cross-origin %s refused", r.Method)
	}
	return nil
}

func (g *guard) hostAllowed(hostport string) bool {
	h, port, err := net.SplitHostPort(hostport)
	if err != nil {
		h, port = hostport, ""
	}
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if ip, err := netip.ParseAddr(h); err == nil && ip.IsLoopback() {
		return true
	}
	want, ok := g.hosts[h]
	return ok && (want == "" || want == port)
}

// checkJSON refuses a body that does not say it is JSON: a JSON endpoint
// takes application/json (or a +json type), and nothing else, so a
// cross-site form or text/plain post never reaches it.
func checkJSON(r *http.Request, body []byte) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return Errorf(http.StatusUnsupportedMediaType, CodeMediaType, "content type %q: want application/json", truncate(ct, 128))
}

// CheckID refuses a run or dead-letter ID that is empty, longer than
// MaxIDLen bytes or holds a byte other than ASCII letters, digits and
// "._:-".
func CheckID(what, id string) error {
	if e := checkToken(what, id, MaxIDLen); e != nil {
		return e
	}
	return nil
}

// checkToken is CheckID with another length cap.
func checkToken(what, id string, max int) *Error {
	if id == "" {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "empty %s", what)
	}
	if len(id) > max {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "%s of %d bytes is over the %d-byte limit", what, len(id), max)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "%s %q: only letters, digits and ._:- are allowed", what, id)
		}
	}
	return nil
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

// maxMessage caps an error response's message.
const maxMessage = 4 << 10

// bounded returns e with its message cut to maxMessage bytes.
func bounded(e *Error) *Error {
	if len(e.Message) <= maxMessage {
		return e
	}
	c := *e
	c.Message = truncate(c.Message, maxMessage)
	return &c
}

// checkName refuses a plugin or workflow name longer than any that can
// exist (names are at most 128 bytes) as not found, without echoing it.
func checkName(what, code, name string) error {
	if len(name) <= MaxIDLen {
		return nil
	}
	return Errorf(http.StatusNotFound, code, "no %s %q", what, truncate(name, 64))
}

// truncate cuts s to n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
