package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/glob"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// Guest HTTP requests (Extism's http_request) go through a circuit breaker
// per destination host, named "http:HOST", so a guest hammering a dead API
// is stopped too. Every guest request, on either engine, is sent by a client
// the Host owns (host/internal/xabi serves the Extism HTTP imports itself,
// also under go-sdk), through the Host's own transports: the process's
// http.DefaultClient and http.DefaultTransport are never used or changed.
//
// A guest request is checked at every hop, since the client follows
// redirects through RoundTrip with the guest call's context: a hop whose
// host name the plugin's allowed_hosts does not match (go-sdk's semantics:
// the exact name, or a gobwas/glob pattern) is refused with an error, so a
// 302 from an allowed host cannot lead the guest anywhere else. The dialer
// then checks the address it is about to connect to, after DNS, so an
// allowed name cannot resolve its way to a link-local address
// (169.254.0.0/16, fe80::/10, including the cloud metadata service at
// 169.254.169.254) or to fd00:ec2::254; such an address is reached only when
// allowed_hosts names it, exactly or with a pattern of addresses
// ("169.254.*"); a pattern that matches any name ("*") does not count.
// Connections are pooled per distinct allow-list, so a connection dialed
// under one plugin's list never serves a request checked against another.
// When HTTP_PROXY or HTTPS_PROXY applies, the proxy resolves names and the
// address check sees only the proxy's address.
//
// A request refused by an open breaker gets a 503 response with a
// Retry-After header instead of a trap, so the guest can fail (or fall
// back) the way it would for the real service. 5xx responses and transport
// errors count as failures; the request itself is never retried by the host
// (only the guest knows whether it is idempotent).

// HTTPPolicyName is the executor name of a destination host's breaker.
func HTTPPolicyName(hostname string) string { return "http:" + hostname }

type headerFunc = func(ctx context.Context, h http.Header)

// WithHTTPHeaders calls f with the context of the guest call and the
// headers of each HTTP request the guest sends (every hop), before it
// leaves: a tracer adds its traceparent there. f must be quick.
func WithHTTPHeaders(f func(ctx context.Context, h http.Header)) Option {
	return optionFunc(func(o *options) { o.httpHeaders = f })
}

// guestTransport is the transport of the Host's guest HTTP client. A
// request that does not come from a guest call is refused.
type guestTransport struct{ h *Host }

// statusError carries a 5xx response through the executor as a failure.
type statusError struct{ resp *http.Response }

func (e *statusError) Error() string { return "HTTP " + e.resp.Status }

func (t *guestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callKey{}).(*callState)
	if st == nil || st.host != t.h {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("bulkhead: guest HTTP transport used outside a guest call")
	}
	h := t.h
	var hosts []string
	if st.gen != nil {
		hosts = st.gen.manifest.AllowedHosts
	}
	dest := h.guestNet.dest(hosts)
	if hn := req.URL.Hostname(); !dest.allow.host(hn) {
		if req.Body != nil {
			req.Body.Close()
		}
		if req.Response != nil {
			return nil, fmt.Errorf("bulkhead: redirect to %q refused: not in allowed_hosts", hn)
		}
		return nil, fmt.Errorf("bulkhead: HTTP request to %q refused: not in allowed_hosts", hn)
	}
	if f := h.opts.httpHeaders; f != nil {
		req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
		f(req.Context(), req.Header)
	}
	name := HTTPPolicyName(req.URL.Hostname())
	e, err := h.execs.GetOrCreate(name, h.opts.httpPolicy)
	if err != nil {
		return nil, err
	}
	var resp *http.Response
	err = e.Do(req.Context(), func(ctx context.Context) error {
		r, err := dest.tr.RoundTrip(req)
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

// guestNet holds a Host's transports of guest HTTP requests, one per
// distinct allow-list.
type guestNet struct {
	mu    sync.Mutex
	dests map[string]*guestDest
	// refuse adds networks to the refused addresses (a test seam: tests
	// refuse loopback to exercise the dial check without leaving it).
	refuse []netip.Prefix
}

// guestDest is the transport of the requests checked against one
// allow-list.
type guestDest struct {
	allow *allowList
	tr    *http.Transport
}

func (n *guestNet) dest(hosts []string) *guestDest {
	key := strings.Join(hosts, "\x00")
	n.mu.Lock()
	defer n.mu.Unlock()
	if d := n.dests[key]; d != nil {
		return d
	}
	d := &guestDest{allow: newAllowList(hosts)}
	refuse := n.refuse
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			return d.allow.dial(address, refuse)
		}}
	d.tr = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if n.dests == nil {
		n.dests = map[string]*guestDest{}
	}
	n.dests[key] = d
	return d
}

// close closes the idle connections of every transport.
func (n *guestNet) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.dests {
		d.tr.CloseIdleConnections()
	}
}

// allowList is a plugin's allowed_hosts, matched as go-sdk matches them:
// the exact host name, else the entry as a gobwas/glob pattern.
type allowList struct {
	entries []allowEntry
}

type allowEntry struct {
	raw string
	g   glob.Glob // nil: the entry is not a valid pattern
	// anyName: the pattern matches host names, not only addresses, so it
	// does not open a refused address.
	anyName bool
}

// probeName is a name no address pattern matches.
const probeName = "bulkhead.invalid"

func newAllowList(hosts []string) *allowList {
	l := &allowList{}
	for _, h := range hosts {
		e := allowEntry{raw: h}
		if g, err := glob.Compile(h); err == nil {
			e.g = g
			e.anyName = g.Match(probeName)
		}
		l.entries = append(l.entries, e)
	}
	return l
}

func (l *allowList) host(name string) bool {
	for _, e := range l.entries {
		if e.raw == name || e.g != nil && e.g.Match(name) {
			return true
		}
	}
	return false
}

// address reports whether the list opens a refused address: by its text,
// exactly or with a pattern of addresses.
func (l *allowList) address(ip netip.Addr) bool {
	forms := []string{ip.String(), ip.WithZone("").String(), ip.Unmap().WithZone("").String()}
	for _, e := range l.entries {
		for _, f := range forms {
			if e.raw == f || e.g != nil && !e.anyName && e.g.Match(f) {
				return true
			}
		}
	}
	return false
}

// dial checks the address a guest request is about to connect to.
func (l *allowList) dial(address string, refuse []netip.Prefix) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("bulkhead: guest dial to %q refused: not an IP address", address)
	}
	ip := ap.Addr()
	if !refusedAddr(ip, refuse) || l.address(ip) {
		return nil
	}
	return fmt.Errorf("bulkhead: guest dial to %s refused: link-local or metadata address not in allowed_hosts", ip)
}

var (
	awsMetadataV6 = netip.MustParseAddr("fd00:ec2::254")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
)

// refusedAddr reports whether ip is link-local (which holds the cloud
// metadata service, 169.254.169.254), AWS's IPv6 metadata address, the
// NAT64 form of either, or in one of extra.
func refusedAddr(ip netip.Addr, extra []netip.Prefix) bool {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip == awsMetadataV6 {
		return true
	}
	for _, p := range extra {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
