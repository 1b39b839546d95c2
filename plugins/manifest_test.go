package plugins

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
)

func TestParseManifest(t *testing.T) {
	give := `# limits
memory: 64MiB
max_input: 1MiB
timeout: 2s
cpu_budget: 1000
pool:
  min: 1
  max: 8
  idle_timeout: 1m
allowed_hosts: ["api.example.com"]
allowed_paths: {"ro:/data": /data}
config:
  region: eu
preset: api
policy:
  retry: {attempts: 5} # five
  timeout: 1s
`
	m, err := ParseManifest("p.yaml", []byte(give))
	if err != nil {
		t.Fatal(err)
	}
	want := abi.Manifest{
		Memory: 64 << 20, MaxInput: 1 << 20, Timeout: abi.Duration(2 * time.Second), CPUBudget: 1000,
		Pool:         abi.Pool{Min: 1, Max: 8, IdleTimeout: abi.Duration(time.Minute)},
		AllowedHosts: []string{"api.example.com"},
		AllowedPaths: map[string]string{"ro:/data": "/data"},
		Config:       map[string]string{"region": "eu"},
	}
	if m.Memory != want.Memory || m.MaxInput != want.MaxInput || m.Timeout != want.Timeout ||
		m.CPUBudget != want.CPUBudget || m.Pool != want.Pool || m.AllowedHosts[0] != "api.example.com" ||
		m.AllowedPaths["ro:/data"] != "/data" || m.Config["region"] != "eu" {
		t.Errorf("manifest = %+v, want %+v", m.Manifest, want)
	}
	if m.Preset != "api" {
		t.Errorf("preset = %q", m.Preset)
	}
	if got := string(m.PolicyYAML); !strings.Contains(got, "attempts: 5") || !strings.Contains(got, "timeout: 1s") || strings.Contains(got, "region") {
		t.Errorf("policy yaml = %q", got)
	}
}

func TestParseManifest_Empty(t *testing.T) {
	for _, give := range []string{"", "# nothing here\n", "---\n", "~\n"} {
		m, err := ParseManifest("p.yaml", []byte(give))
		if err != nil {
			t.Errorf("%q: %v", give, err)
			continue
		}
		if m.Memory != 0 || m.Preset != "" || m.PolicyYAML != nil {
			t.Errorf("%q: %+v, want zero", give, m)
		}
	}
}

func TestParseManifest_Errors(t *testing.T) {
	tests := []struct {
		name, give string
		wantLine   int
		wantMsg    string
	}{
		{"unknown key", "memory: 64MiB\ntimeout: 1s\nmemroy: 2MiB\n", 3, `unknown key "memroy"`},
		{"unknown nested key", "pool:\n  min: 1\n  maxx: 2\n", 3, `unknown key "maxx"`},
		{"bad size", "timeout: 1s\nmemory: lots\n", 2, `invalid size "lots"`},
		{"bad nested duration", "memory: 4MiB\npool:\n  max: 2\n  idle_timeout: soon\n", 4, `invalid duration "soon"`},
		{"wrong type", "pool:\n  max: many\n", 2, "cannot unmarshal"},
		{"syntax", "memory: 4MiB\ntimeout: [1s\n", 2, "expected ','"},
		{"syntax at end", "memory: [\n", 2, "node content"},
		{"syntax on line 1", "a: b: c\n", 1, "mapping values"},
		{"bad indent", "memory: 4MiB\n  timeout: 1s\n", 2, "mapping values"},
		{"garbage", "\x00\x01binary", 1, "control characters"},
		{"garbage on line 3", "memory: 4MiB\ntimeout: 1s\nx: \x7f\n", 3, "control characters"},
		{"invalid utf-8", "memory: 4MiB\n\xff\n", 2, "UTF-8"},
		{"not a mapping", "just text\n", 1, "cannot unmarshal"},
		{"tab indentation", "pool:\n\tmax: 1\n", 2, ""},
		{"two documents", "memory: 4MiB\n---\nmemory: 8MiB\n", 2, "one YAML document"},
		{"policy not a mapping", "preset: api\npolicy: [1, 2]\n", 2, "policy must be a mapping"},
		{"duplicate key", "memory: 4MiB\nmemory: 8MiB\n", 2, "already defined"},
		{"duplicate policy key", "policy:\n  retry: 1\n  retry: 2\n", 3, "policy: mapping key \"retry\" already defined"},
		{"invalid limits", "memory: 1KiB\n", 0, "below the 2 MiB minimum"},
		{"pool min over max", "pool: {min: 4, max: 2}\n", 0, "exceeds max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest("dir/p.yaml", []byte(tt.give))
			if err == nil {
				t.Fatal("no error")
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("%v (%T) is not a *ManifestError", err, err)
			}
			if me.File != "dir/p.yaml" || me.Line != tt.wantLine {
				t.Errorf("error at %s:%d, want dir/p.yaml:%d (%v)", me.File, me.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if tt.wantLine > 0 && !strings.HasPrefix(err.Error(), "dir/p.yaml:"+strconv.Itoa(tt.wantLine)+": ") {
				t.Errorf("error %q does not start with file:line", err)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/manifests/*.yaml")
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "memory: 64MiB\n", "pool: {min: 1, max: 2}\n", "policy:\n  a: &x [1]\n  b: *x\n", "memory: [\n", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest("f.yaml", b)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || me.File != "f.yaml" || me.Line < 0 {
				t.Fatalf("error %v (%T) is not a *ManifestError of f.yaml", err, err)
			}
			if _, err2 := ParseManifest("f.yaml", b); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second parse: %v, first: %v", err2, err)
			}
			return
		}
		if err := m.Manifest.Validate(); err != nil {
			t.Fatalf("accepted a manifest that fails Validate: %v", err)
		}
		if m.PolicyYAML != nil {
			var policy map[string]any
			if err := yaml.Unmarshal(m.PolicyYAML, &policy); err != nil {
				t.Fatalf("policy %q is not a YAML mapping: %v", m.PolicyYAML, err)
			}
		}
	})
}
