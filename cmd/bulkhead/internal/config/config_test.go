package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bulkhead.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func setting(t *testing.T, c *Config, key string) Setting {
	t.Helper()
	for _, s := range c.Settings() {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no setting %s", key)
	return Setting{}
}

func TestLoad_Defaults(t *testing.T) {
	c, err := Load(Options{Env: envOf(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.DataDir != DefaultDataDir || c.CacheDir != ".bulkhead/cache" {
		t.Errorf("defaults: %+v", c)
	}
	if !c.ResilienceEnabled() || !c.DashboardEnabled() || c.Token() != "" {
		t.Errorf("defaults: enabled %v dashboard %v token %q", c.ResilienceEnabled(), c.DashboardEnabled(), c.Token())
	}
	if s := setting(t, c, "listen"); s.Source.Kind != FromDefault {
		t.Errorf("listen source %v", s.Source)
	}
	if s := setting(t, c, "resilience.policy.retry.max_attempts"); s.Value != "3" || s.Source.String() != "preset production" {
		t.Errorf("policy setting %+v", s)
	}
}

func TestLoad_FlagOverEnvOverFile(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:9001\ndata_dir: /from/file\nlog_level: warn\n")
	env := envOf(map[string]string{"BULKHEAD_LISTEN": "127.0.0.1:9002", "BULKHEAD_DATA": "/from/env"})
	c, err := Load(Options{File: file, Env: env, Flags: parseFlags(t, "--listen", "127.0.0.1:9003")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, value, source string }{
		{"listen", "127.0.0.1:9003", "flag --listen"},
		{"data_dir", "/from/env", "env BULKHEAD_DATA"},
		{"log_level", "warn", "file " + file + ":3"},
		{"log_format", "text", "default"},
	}
	for _, tt := range tests {
		s := setting(t, c, tt.key)
		if s.Value != tt.value || s.Source.String() != tt.source {
			t.Errorf("%s = %q from %q, want %q from %q", tt.key, s.Value, s.Source, tt.value, tt.source)
		}
	}
}

func TestLoad_SeedEnvironment(t *testing.T) {
	env := envOf(map[string]string{
		"RESILIENCE_ENABLED":               "false",
		"RESILIENCE_CHECKPOINT_DIR":        "/var/checkpoints",
		"BULKHEAD_DATA":                    "/loses",
		"RESILIENCE_HEALTH_CHECK_INTERVAL": "30000",
	})
	c, err := Load(Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if c.ResilienceEnabled() {
		t.Error("RESILIENCE_ENABLED=false ignored")
	}
	if c.DataDir != "/var/checkpoints" {
		t.Errorf("data_dir %q", c.DataDir)
	}
	if c.Resilience.HealthCheckInterval.D() != 30*time.Second {
		t.Errorf("interval %s", c.Resilience.HealthCheckInterval)
	}
	p, err := c.Policy()
	if err != nil || p.Retry.MaxAttempts != 1 || p.Breaker.FailureThreshold != -1 {
		t.Errorf("disabled policy %+v %v", p, err)
	}
}

func TestLoad_PolicyOverPreset(t *testing.T) {
	file := writeFile(t, `resilience:
  preset: development
  policy:
    retry:
      max_attempts: 7
    breaker:
      open_timeout: 2s
`)
	c, err := Load(Options{File: file, Env: envOf(nil)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.Retry.MaxAttempts != 7 || p.Breaker.OpenTimeout.D() != 2*time.Second {
		t.Errorf("overrides lost: %+v", p)
	}
	if p.Breaker.FailureThreshold != 10 { // the development preset's
		t.Errorf("preset lost: failure_threshold %d", p.Breaker.FailureThreshold)
	}
	if s := setting(t, c, "resilience.policy.retry.max_attempts"); s.Source.String() != "file "+file+":5" {
		t.Errorf("max_attempts source %v", s.Source)
	}
	if s := setting(t, c, "resilience.policy.breaker.failure_threshold"); s.Source.String() != "preset development" {
		t.Errorf("failure_threshold source %v", s.Source)
	}
}

func TestLoad_ErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string
	}{
		{"unknown key", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{":2: field listen_addr not found"}},
		{"nested unknown key", "resilience:\n  preset: api\n  bogus: 1\n", []string{":3: field bogus not found"}},
		{"policy unknown key", "resilience:\n  policy:\n    retry:\n      max_atempts: 2\n", []string{":4: field max_atempts not found"}},
		{"bad duration", "drain:\n  grace_period: soon\n", []string{":2:", "soon"}},
		{"syntax", "listen: [\n", []string{"bulkhead.yaml:"}},
		{"duplicate", "listen: a:1\nlisten: b:2\n", []string{":2:", "already defined"}},
		{"invalid value", "log_level: loud\n", []string{":1: log_level:", "loud"}},
		{"unknown preset", "resilience:\n  preset: reckless\n", []string{":2: resilience.preset:", "reckless"}},
		{"bad policy", "resilience:\n  policy:\n    retry:\n      multiplier: 0.5\n", []string{":4: resilience.policy.retry.multiplier:", "0.5"}},
		{"two problems", "log_level: loud\nlog_format: xml\n", []string{":1: log_level", ":2: log_format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, tt.give)
			_, err := Load(Options{File: file, Env: envOf(nil)})
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoad_EnvAndFlagErrors(t *testing.T) {
	_, err := Load(Options{Env: envOf(map[string]string{"BULKHEAD_GRACE_PERIOD": "soon"})})
	if err == nil || !strings.Contains(err.Error(), "env BULKHEAD_GRACE_PERIOD") {
		t.Errorf("env error %v", err)
	}
	_, err = Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--log-level", "loud")})
	if err == nil || !strings.Contains(err.Error(), "flag --log-level: log_level") {
		t.Errorf("flag error %v", err)
	}
}

func TestLoad_Token(t *testing.T) {
	_, err := Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--listen", "0.0.0.0:7070")})
	if err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("public listen without token: %v", err)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("s3cret-s3cret-s3cret\n"), 0o600)
	c, err := Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--listen", "0.0.0.0:7070", "--token-file", tokFile)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token() != "s3cret-s3cret-s3cret" {
		t.Errorf("token %q", c.Token())
	}
	// A short token is refused on a public address, kept on loopback.
	for _, tok := range []string{"x", strings.Repeat("y", MinTokenLen-1)} {
		_, err = Load(Options{Env: envOf(map[string]string{"BULKHEAD_TOKEN": tok}), Flags: parseFlags(t, "--listen", "0.0.0.0:7070")})
		if !errors.Is(err, ErrShortToken) || !strings.Contains(err.Error(), "env BULKHEAD_TOKEN: token:") {
			t.Errorf("token of %d characters on 0.0.0.0: %v", len(tok), err)
		}
		if _, err := Load(Options{Env: envOf(map[string]string{"BULKHEAD_TOKEN": tok})}); err != nil {
			t.Errorf("token of %d characters on loopback: %v", len(tok), err)
		}
	}
	c, err = Load(Options{Env: envOf(map[string]string{"BULKHEAD_TOKEN": "fromenv"}), Flags: parseFlags(t, "--token-file", tokFile)})
	if err != nil || c.Token() != "fromenv" {
		t.Fatalf("env token: %q %v", c.Token(), err)
	}
	for _, s := range c.Settings() {
		if strings.Contains(s.Value, "fromenv") {
			t.Errorf("token shown in %s", s.Key)
		}
	}
	if setting(t, c, "token").Source.String() != "env BULKHEAD_TOKEN" {
		t.Errorf("token source %v", setting(t, c, "token").Source)
	}
}

func TestLoopback(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"127.0.0.1:7070", true}, {"[::1]:7070", true}, {"localhost:1", true},
		{"0.0.0.0:7070", false}, {":7070", false}, {"10.0.0.1:80", false}, {"example.com:80", false},
	}
	for _, tt := range tests {
		if got := Loopback(tt.give); got != tt.want {
			t.Errorf("Loopback(%q) = %v", tt.give, got)
		}
	}
}

func TestLoad_ListenAndPublicNames(t *testing.T) {
	for _, give := range []string{"127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1", "127.0.0.1:07070", "127.0.0.1:65536"} {
		_, err := Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--listen", give)})
		if err == nil || !strings.Contains(err.Error(), "flag --listen: listen:") {
			t.Errorf("listen %q: %v", give, err)
		}
	}
	for _, give := range []string{"127.0.0.1:0", "[::1]:65535", "localhost:7070"} {
		if _, err := Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--listen", give)}); err != nil {
			t.Errorf("listen %q: %v", give, err)
		}
	}
	file := writeFile(t, "public_names: [bulkhead.example.com, \"proxy.example:8443\"]\n")
	c, err := Load(Options{File: file, Env: envOf(nil)})
	if err != nil || strings.Join(c.PublicNames, " ") != "bulkhead.example.com proxy.example:8443" {
		t.Fatalf("public_names from the file: %q %v", c.PublicNames, err)
	}
	if s := setting(t, c, "public_names"); s.Value != "bulkhead.example.com,proxy.example:8443" || s.Source.String() != "file "+file+":1" {
		t.Errorf("public_names setting %+v", s)
	}
	c, err = Load(Options{Env: envOf(map[string]string{"BULKHEAD_PUBLIC_NAMES": " a.example , b.example:80,"})})
	if err != nil || strings.Join(c.PublicNames, " ") != "a.example b.example:80" {
		t.Errorf("public_names from the environment: %q %v", c.PublicNames, err)
	}
	for _, give := range []string{"http://a.example", "a.example:99999", "a.example/x", ":80"} {
		_, err := Load(Options{Env: envOf(nil), Flags: parseFlags(t, "--public-names", give)})
		if err == nil || !strings.Contains(err.Error(), "public_names:") {
			t.Errorf("public name %q: %v", give, err)
		}
	}
}
