package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// service is a started bulkhead serve of cfg.
type service struct {
	addr string
	hc   *http.Client
}

func startService(t *testing.T, cfg func(c *config.Config)) *service {
	t.Helper()
	return startServiceLogging(t, cfg, io.Discard)
}

// startServiceLogging is startService writing JSON logs to w.
func startServiceLogging(t *testing.T, cfg func(c *config.Config), w io.Writer) *service {
	t.Helper()
	c := testConfig(t)
	if cfg != nil {
		cfg(c)
	}
	var srv *server.Server
	app := fxtest.New(t, Options(c, slog.New(slog.NewJSONHandler(w, nil))), fx.Populate(&srv))
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	s := &service{addr: srv.Addr(), hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}}
	waitUntil(t, "/readyz", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	return s
}

func (s *service) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := s.hc.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type healthBody struct {
	Status     string `json:"status"`
	Ready      bool   `json:"ready"`
	Components []struct {
		Name     string          `json:"name"`
		Status   string          `json:"status"`
		Interval json.RawMessage `json:"interval"`
		Latency  struct {
			Last json.RawMessage `json:"last"`
		} `json:"latency"`
		LastResult struct {
			Message string `json:"message"`
		} `json:"last_result"`
	} `json:"components"`
}

func (s *service) health(t *testing.T) (int, healthBody) {
	t.Helper()
	code, b := s.get(t, "/v1/health")
	var h healthBody
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/v1/health %d %s: %v", code, b, err)
	}
	readyz, _ := s.get(t, "/readyz")
	if readyz != code {
		t.Fatalf("/v1/health answered %d, /readyz %d: they must agree", code, readyz)
	}
	return code, h
}

func (h healthBody) component(name string) (string, string, bool) {
	for _, c := range h.Components {
		if c.Name == name {
			return c.Status, c.LastResult.Message, true
		}
	}
	return "", "", false
}

// The plugin:NAME health components follow the plugin directory: a
// quarantined plugin is reported, and once its file is removed its
// component goes and the service is healthy again; a plugin added while
// the service runs gets a component; /v1/health and /readyz answer the
// same status code; durations are duration strings.
func TestHealth_FollowsThePluginDirectory(t *testing.T) {
	s := startService(t, func(c *config.Config) {
		c.Resilience.HealthCheckInterval = resilience.Duration(100 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(c.PluginsDir, "junk.wasm"), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	var h healthBody
	waitUntil(t, "plugin:junk unhealthy", 30*time.Second, func() bool {
		_, h = s.health(t)
		st, _, _ := h.component("plugin:junk")
		return st == "unhealthy"
	})
	if _, msg, _ := h.component("plugin:junk"); !strings.HasPrefix(msg, "quarantined: ") {
		t.Errorf("plugin:junk message %q, want the quarantine reason", msg)
	}
	if st, _, ok := h.component("plugin:tiny"); !ok || st == "unhealthy" {
		t.Errorf("plugin:tiny %q (present %v)", st, ok)
	}
	for _, c := range h.Components {
		var iv, last string
		if json.Unmarshal(c.Interval, &iv) != nil || json.Unmarshal(c.Latency.Last, &last) != nil {
			t.Fatalf("%s: interval %s, latency.last %s: want duration strings", c.Name, c.Interval, c.Latency.Last)
		}
		if iv != "100ms" {
			t.Errorf("%s: interval %q, want 100ms", c.Name, iv)
		}
	}

	if err := os.Remove(filepath.Join(s.pluginsDir(t), "junk.wasm")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "plugin:junk gone and the service healthy", 30*time.Second, func() bool {
		code, h := s.health(t)
		_, _, present := h.component("plugin:junk")
		return !present && code == 200 && h.Status != "unhealthy" && h.Ready
	})

	tiny, err := os.ReadFile("../../../../host/testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.pluginsDir(t), "late.wasm"), tiny, 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "plugin:late healthy", 30*time.Second, func() bool {
		_, h := s.health(t)
		st, _, _ := h.component("plugin:late")
		return st == "healthy"
	})
}

func (s *service) pluginsDir(t *testing.T) string {
	t.Helper()
	_, b := s.get(t, "/v1/health")
	var h struct {
		Components []struct {
			Name       string `json:"name"`
			LastResult struct {
				Metadata map[string]any `json:"metadata"`
			} `json:"last_result"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.Components {
		if c.Name == "plugins" {
			if d, ok := c.LastResult.Metadata["dir"].(string); ok {
				return d
			}
		}
	}
	t.Fatalf("no plugins component with its dir: %s", b)
	return ""
}

// docMetrics returns the metric names the metrics section of
// docs/serve.md lists.
func docMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../../../docs/serve.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := regexp.MustCompile("`(bulkhead_[a-z_]+)")
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.HasSuffix(strings.ToLower(line), "metrics")
			continue
		}
		if in && strings.HasPrefix(line, "|") {
			for _, m := range name.FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("docs/serve.md lists %d metrics: the parser lost the table", len(out))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// scrapeNames returns the bulkhead_ metric families /metrics serves.
func (s *service) scrapeNames(t *testing.T) []string {
	t.Helper()
	code, b := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// "# TYPE name kind" opens each family of the text format.
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "bulkhead_") {
			out = append(out, f[2])
		}
	}
	slices.Sort(out)
	return out
}

// servedMetrics returns the bulkhead_ metric families of a service that
// has served a plugin call and checked its health.
func servedMetrics(t *testing.T) []string {
	t.Helper()
	s := startService(t, nil)
	req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+s.addr+"/v1/plugins/tiny/call?function=noop", nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("call: %s", resp.Status)
	}
	var got []string
	waitUntil(t, "the health components to be checked", 30*time.Second, func() bool {
		got = s.scrapeNames(t)
		return slices.Contains(got, "bulkhead_component_status")
	})
	return got
}

// Every metric docs/serve.md names is on /metrics once the service has
// served a call, and every bulkhead_ metric /metrics serves is documented.
func TestMetrics_MatchTheDocs(t *testing.T) {
	got := servedMetrics(t)
	docs := docMetrics(t)
	for _, n := range docs {
		if !slices.Contains(got, n) {
			t.Errorf("docs/serve.md names %s; /metrics does not serve it", n)
		}
	}
	for _, n := range got {
		if !slices.Contains(docs, n) {
			t.Errorf("/metrics serves %s; docs/serve.md does not name it", n)
		}
	}
}
