package app

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

const monitoringDir = "../../../../docs/monitoring/"

// metricsOf returns the metric names an expression selects, without the
// _bucket, _sum and _count suffixes of histograms.
func metricsOf(t *testing.T, p parser.Parser, expr string) []string {
	t.Helper()
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Errorf("%q: %v", expr, err)
		return nil
	}
	var out []string
	for _, sel := range parser.ExtractSelectors(e) {
		for _, m := range sel {
			if m.Name != "__name__" {
				continue
			}
			if m.Type != labels.MatchEqual {
				t.Errorf("%q selects metrics by a pattern (%s): name them", expr, m)
				continue
			}
			name := m.Value
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, suffix)
			}
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Errorf("%q uses no metric", expr)
	}
	return out
}

// ruleFile is Prometheus's rule-file schema (the alerting part of it).
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promTemplateFuncs are the functions Prometheus gives alert templates
// (their names are what parsing needs).
var promTemplateFuncs = template.FuncMap{}

func init() {
	for _, name := range []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml",
		"match", "title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "stripPort", "stripDomain",
		"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime",
		"toDuration", "pathPrefix", "externalURL", "parseDuration", "now"} {
		promTemplateFuncs[name] = func(...any) any { return nil }
	}
}

// The alert rules are a valid Prometheus rule file: known keys only
// (as Prometheus reads it), unique alert names, durations, PromQL (the
// Prometheus parser) and annotation templates (Go templates with
// Prometheus's functions and its $labels and $value); they cover
// breakers, dead letters, the run failure ratio, stuck runs and
// quarantined plugins, and use only metrics /metrics serves.
func TestMonitoring_AlertRules(t *testing.T) {
	served := servedMetrics(t)
	b, err := os.ReadFile(monitoringDir + "alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	p := parser.NewParser(parser.Options{})
	var alerts []string
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Record != "" {
				t.Errorf("rule %+v: want an alerting rule", r)
				continue
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("alert %s twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s: want a summary and a severity", r.Alert)
			}
			for k, v := range r.Annotations {
				// Prometheus prefixes each template with these definitions.
				src := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}" + v
				if _, err := template.New(k).Funcs(promTemplateFuncs).Parse(src); err != nil {
					t.Errorf("alert %s: annotation %s: %v", r.Alert, k, err)
				}
			}
			for _, m := range metricsOf(t, p, r.Expr) {
				if !slices.Contains(served, m) {
					t.Errorf("alert %s uses %s, which /metrics does not serve", r.Alert, m)
				}
			}
		}
	}
	for _, want := range []string{"BulkheadBreakerOpen", "BulkheadDeadLettersGrowing", "BulkheadRunFailureRatio",
		"BulkheadNoProgress", "BulkheadPluginQuarantined"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s in %v", want, alerts)
		}
	}
}

// The Grafana dashboard is a dashboard document whose every query parses
// as PromQL (with Grafana's variables given values) and uses only
// metrics /metrics serves.
func TestMonitoring_GrafanaDashboard(t *testing.T) {
	served := servedMetrics(t)
	b, err := os.ReadFile(monitoringDir + "grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			GridPos struct {
				H, W, X, Y int
			} `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatal(err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard %q (uid %q) with %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	p := parser.NewParser(parser.Options{})
	ids := map[int]bool{}
	for _, pn := range dash.Panels {
		if pn.Title == "" || pn.Type == "" || pn.GridPos.W <= 0 || pn.GridPos.H <= 0 || pn.GridPos.X+pn.GridPos.W > 24 || len(pn.Targets) == 0 {
			t.Errorf("panel %d %q: want a title, a type, a place on the 24-column grid and a query", pn.ID, pn.Title)
		}
		if ids[pn.ID] {
			t.Errorf("panel id %d twice", pn.ID)
		}
		ids[pn.ID] = true
		for _, tg := range pn.Targets {
			for _, m := range metricsOf(t, p, vars.Replace(tg.Expr)) {
				if !slices.Contains(served, m) {
					t.Errorf("panel %q uses %s, which /metrics does not serve", pn.Title, m)
				}
			}
		}
	}
}
