package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// SourceKind says where a value came from.
type SourceKind string

// Source kinds, lowest precedence first.
const (
	FromDefault SourceKind = "default"
	FromPreset  SourceKind = "preset"
	FromFile    SourceKind = "file"
	FromEnv     SourceKind = "env"
	FromFlag    SourceKind = "flag"
)

// Source is where one value came from: "default", "preset production",
// "file bulkhead.yaml:4", "env BULKHEAD_LISTEN", "flag --listen".
type Source struct {
	Kind SourceKind `json:"kind"`
	// Where is the preset name, FILE:LINE, the variable or the flag.
	Where string `json:"where,omitempty"`
}

func (s Source) String() string {
	if s.Where == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + " " + s.Where
}

// Setting is one effective value and its source, for `config show`.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source Source `json:"source"`
}

// field is one scalar setting: its key in the file, its environment
// variables (the first one set wins) and its flag.
type field struct {
	key   string
	env   []string
	flag  string
	usage string
	get   func(*Config) string
	set   func(*Config, string) error
	// zero reports the value is unset (so the default applies).
	zero func(*Config) bool
	def  func(*Config)
}

func strField(key string, env []string, flg, usage string, p func(*Config) *string, def string) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get:  func(c *Config) string { return *p(c) },
		set:  func(c *Config, s string) error { *p(c) = s; return nil },
		zero: func(c *Config) bool { return *p(c) == "" },
		def:  func(c *Config) { *p(c) = def },
	}
}

// parseDuration accepts a Go duration or a bare number of milliseconds
// (RESILIENCE_HEALTH_CHECK_INTERVAL=30000).
func parseDuration(s string) (resilience.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return resilience.Duration(time.Duration(n) * time.Millisecond), nil
	}
	var d resilience.Duration
	err := d.UnmarshalText([]byte(s))
	return d, err
}

// listField is a list of strings, comma-separated in variables and flags.
func listField(key string, env []string, flg, usage string, p func(*Config) *[]string) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get: func(c *Config) string { return strings.Join(*p(c), ",") },
		set: func(c *Config, s string) error {
			var out []string
			for _, v := range strings.Split(s, ",") {
				if v = strings.TrimSpace(v); v != "" {
					out = append(out, v)
				}
			}
			*p(c) = out
			return nil
		},
		zero: func(c *Config) bool { return len(*p(c)) == 0 },
		def:  func(c *Config) { *p(c) = nil },
	}
}

func durField(key string, env []string, flg, usage string, p func(*Config) *resilience.Duration, def time.Duration) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get: func(c *Config) string { return p(c).String() },
		set: func(c *Config, s string) error {
			d, err := parseDuration(s)
			if err == nil {
				*p(c) = d
			}
			return err
		},
		zero: func(c *Config) bool { return *p(c) == 0 },
		def:  func(c *Config) { *p(c) = resilience.Duration(def) },
	}
}

func sizeField(key string, env []string, flg, usage string, p func(*Config) *abi.Size, def int64) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get: func(c *Config) string { return p(c).String() },
		set: func(c *Config, s string) error {
			n, err := abi.ParseSize(s)
			if err == nil {
				*p(c) = n
			}
			return err
		},
		zero: func(c *Config) bool { return *p(c) == 0 },
		def:  func(c *Config) { *p(c) = abi.Size(def) },
	}
}

func intField(key string, env []string, flg, usage string, p func(*Config) *int, def int) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get: func(c *Config) string { return strconv.Itoa(*p(c)) },
		set: func(c *Config, s string) error {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%q is not an integer", s)
			}
			*p(c) = n
			return nil
		},
		zero: func(c *Config) bool { return *p(c) == 0 },
		def:  func(c *Config) { *p(c) = def },
	}
}

func boolField(key string, env []string, flg, usage string, p func(*Config) **bool, def bool) field {
	return field{key: key, env: env, flag: flg, usage: usage,
		get: func(c *Config) string { return strconv.FormatBool(*p(c) == nil && def || *p(c) != nil && **p(c)) },
		set: func(c *Config, s string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%q is not a boolean", s)
			}
			*p(c) = &b
			return nil
		},
		zero: func(c *Config) bool { return *p(c) == nil },
		def:  func(c *Config) { b := def; *p(c) = &b },
	}
}

func env(names ...string) []string { return names }

// fields lists every scalar setting in the order `config show` prints them.
var fields = []field{
	strField("listen", env("BULKHEAD_LISTEN"), "listen", "listen on `ADDR` (HOST:PORT)", func(c *Config) *string { return &c.Listen }, DefaultListen),
	listField("public_names", env("BULKHEAD_PUBLIC_NAMES"), "public-names", "more `NAMES` (comma-separated HOST or HOST:PORT) the service is reached by", func(c *Config) *[]string { return &c.PublicNames }),
	strField("token_file", env("BULKHEAD_TOKEN_FILE"), "token-file", "read the API bearer token from `PATH` (BULKHEAD_TOKEN wins)", func(c *Config) *string { return &c.TokenFile }, ""),
	strField("plugins_dir", env("BULKHEAD_PLUGINS"), "plugins", "plugin `DIR`", func(c *Config) *string { return &c.PluginsDir }, DefaultPluginsDir),
	strField("workflows_dir", env("BULKHEAD_WORKFLOWS"), "workflows", "workflow `DIR`", func(c *Config) *string { return &c.WorkflowsDir }, DefaultWorkflowsDir),
	strField("data_dir", env("RESILIENCE_CHECKPOINT_DIR", "BULKHEAD_DATA"), "data", "data `DIR` holding the state store", func(c *Config) *string { return &c.DataDir }, DefaultDataDir),
	strField("cache_dir", env("BULKHEAD_CACHE"), "cache", "compiled-code cache `DIR` (default DATA/cache)", func(c *Config) *string { return &c.CacheDir }, ""),
	strField("log_level", env("BULKHEAD_LOG_LEVEL"), "log-level", "log `LEVEL`: debug, info, warn, error", func(c *Config) *string { return &c.LogLevel }, DefaultLogLevel),
	strField("log_format", env("BULKHEAD_LOG_FORMAT"), "log-format", "log `FORMAT`: text or json", func(c *Config) *string { return &c.LogFormat }, DefaultLogFormat),
	boolField("dashboard", env("BULKHEAD_DASHBOARD"), "dashboard", "serve the dashboard at / (`BOOL`)", func(c *Config) **bool { return &c.Dashboard }, true),
	boolField("resilience.enabled", env("RESILIENCE_ENABLED"), "resilience", "run plugin calls through retry and breaker (`BOOL`)", func(c *Config) **bool { return &c.Resilience.Enabled }, true),
	strField("resilience.preset", env("BULKHEAD_PRESET"), "preset", "default policy `PRESET`: "+strings.Join(resilience.PresetNames(), ", "), func(c *Config) *string { return &c.Resilience.Preset }, DefaultPreset),
	durField("resilience.health_check_interval", env("RESILIENCE_HEALTH_CHECK_INTERVAL"), "health-check-interval", "check components every `DURATION` (bare number: milliseconds)", func(c *Config) *resilience.Duration { return &c.Resilience.HealthCheckInterval }, DefaultHealthCheckInterval),
	durField("http.read_header_timeout", env("BULKHEAD_HTTP_READ_HEADER_TIMEOUT"), "", "", func(c *Config) *resilience.Duration { return &c.HTTP.ReadHeaderTimeout }, DefaultReadHeaderTimeout),
	durField("http.read_timeout", env("BULKHEAD_HTTP_READ_TIMEOUT"), "", "", func(c *Config) *resilience.Duration { return &c.HTTP.ReadTimeout }, DefaultReadTimeout),
	durField("http.write_timeout", env("BULKHEAD_HTTP_WRITE_TIMEOUT"), "", "", func(c *Config) *resilience.Duration { return &c.HTTP.WriteTimeout }, DefaultWriteTimeout),
	durField("http.idle_timeout", env("BULKHEAD_HTTP_IDLE_TIMEOUT"), "", "", func(c *Config) *resilience.Duration { return &c.HTTP.IdleTimeout }, DefaultIdleTimeout),
	sizeField("limits.max_body", env("BULKHEAD_MAX_BODY"), "max-body", "largest request body (`SIZE`)", func(c *Config) *abi.Size { return &c.Limits.MaxBody }, DefaultMaxBody),
	sizeField("limits.max_run_input", env("BULKHEAD_MAX_RUN_INPUT"), "max-run-input", "largest run input (`SIZE`)", func(c *Config) *abi.Size { return &c.Limits.MaxRunInput }, DefaultMaxRunInput),
	sizeField("plugins.max_module_size", env("BULKHEAD_MAX_MODULE_SIZE"), "max-module-size", "largest plugin module file (`SIZE`)", func(c *Config) *abi.Size { return &c.Plugins.MaxModuleSize }, DefaultMaxModuleSize),
	durField("plugins.start_timeout", env("BULKHEAD_START_TIMEOUT"), "start-timeout", "refuse a module whose start function runs longer than `DURATION`", func(c *Config) *resilience.Duration { return &c.Plugins.StartTimeout }, DefaultStartTimeout),
	strField("plugins.engine", env("BULKHEAD_ENGINE"), "engine", "`ENGINE` that runs plugins whose manifest names none: native or extism", func(c *Config) *string { return &c.Plugins.Engine }, abi.EngineNative),
	strField("store.url", env("BULKHEAD_STORE"), "store", "state store `URL`: postgres://… for PostgreSQL (default: the embedded store in the data directory)", func(c *Config) *string { return &c.Store.URL }, ""),
	durField("store.retention", env("BULKHEAD_RETENTION"), "retention", "keep finished runs for `DURATION`", func(c *Config) *resilience.Duration { return &c.Store.Retention }, DefaultRetention),
	intField("store.max_checkpoints", env("BULKHEAD_MAX_CHECKPOINTS"), "max-checkpoints", "checkpoints kept per node (`N`)", func(c *Config) *int { return &c.Store.MaxCheckpoints }, DefaultMaxCheckpoints),
	sizeField("store.free_space_reserve", env("BULKHEAD_FREE_SPACE_RESERVE"), "free-space-reserve", "refuse writes that would leave less than `SIZE` free on the data directory's file system", func(c *Config) *abi.Size { return &c.Store.FreeSpaceReserve }, DefaultFreeSpaceReserve),
	strField("store.host_id", env("BULKHEAD_HOST_ID"), "host-id", "name of this host in a shared store's claims (`ID`; default: host name, process ID, random suffix)", func(c *Config) *string { return &c.Store.HostID }, ""),
	durField("store.lease", env("BULKHEAD_LEASE"), "lease", "a node this host runs is rescued by another host `DURATION` after this host stops heartbeating", func(c *Config) *resilience.Duration { return &c.Store.Lease }, DefaultLease),
	durField("store.heartbeat", env("BULKHEAD_HEARTBEAT"), "heartbeat", "tell the store this host is alive every `DURATION`", func(c *Config) *resilience.Duration { return &c.Store.Heartbeat }, DefaultHeartbeat),
	durField("drain.grace_period", env("BULKHEAD_GRACE_PERIOD"), "grace-period", "on SIGTERM, let running nodes finish for `DURATION`", func(c *Config) *resilience.Duration { return &c.Drain.GracePeriod }, DefaultGracePeriod),
}

// Flags holds the configuration flags of a flag set.
type Flags struct {
	file string
	set  map[string]string // flag name → raw value
}

// AddFlags registers --config and one flag per setting that has one on
// fs; pass the result to Load after fs.Parse.
// fs is a standard library or a pflag flag set.
func AddFlags(fs interface {
	StringVar(p *string, name, value, usage string)
	Func(name, usage string, fn func(string) error)
}) *Flags {
	f := &Flags{set: map[string]string{}}
	fs.StringVar(&f.file, "config", "", "read the configuration `FILE` (default $BULKHEAD_CONFIG)")
	for _, fd := range fields {
		if fd.flag == "" {
			continue
		}
		name := fd.flag
		fs.Func(name, fd.usage, func(s string) error { f.set[name] = s; return nil })
	}
	return f
}

// Options say where Load reads from.
type Options struct {
	// File is the configuration file; "" reads none.
	File string
	// Env looks up environment variables (os.LookupEnv when nil).
	Env func(string) (string, bool)
	// Flags are the parsed flags (none when nil).
	Flags *Flags
}

// FileFromFlags returns the --config flag, else $BULKHEAD_CONFIG.
func FileFromFlags(f *Flags, env func(string) (string, bool)) string {
	if f != nil && f.file != "" {
		return f.file
	}
	if env == nil {
		env = os.LookupEnv
	}
	v, _ := env("BULKHEAD_CONFIG")
	return v
}

// Load builds the effective configuration: defaults, then the preset,
// the file, the environment, and the flags, each over the one before. A
// problem in the file names the file and line; every problem is reported
// at once.
func Load(o Options) (*Config, error) {
	c, err := LoadAll(o)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAll is Load that also returns, with the problems, the configuration
// as far as it could be read (a file that does not decode counts for what
// it set): what `config show` prints. Such a Config must not be served.
func LoadAll(o Options) (*Config, error) {
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	c := &Config{sources: map[string]Source{}}
	var errs []error
	if o.File != "" {
		if err := c.readFile(o.File); err != nil {
			errs = append(errs, err)
		}
	}
	for _, fd := range fields {
		for _, name := range fd.env {
			v, ok := o.Env(name)
			if !ok || v == "" {
				continue
			}
			if err := fd.set(c, v); err != nil {
				errs = append(errs, fmt.Errorf("env %s: %s: %w", name, fd.key, err))
			} else {
				c.sources[fd.key] = Source{Kind: FromEnv, Where: name}
			}
			break
		}
		if o.Flags == nil || fd.flag == "" {
			continue
		}
		if v, ok := o.Flags.set[fd.flag]; ok {
			if err := fd.set(c, v); err != nil {
				errs = append(errs, fmt.Errorf("flag --%s: %w", fd.flag, err))
			} else {
				c.sources[fd.key] = Source{Kind: FromFlag, Where: "--" + fd.flag}
			}
		}
	}
	for _, fd := range fields {
		if fd.zero(c) {
			fd.def(c)
			if _, ok := c.sources[fd.key]; !ok {
				c.sources[fd.key] = Source{Kind: FromDefault}
			}
		}
	}
	if c.CacheDir == "" {
		c.CacheDir = strings.TrimSuffix(c.DataDir, "/") + "/cache"
	}
	if v, ok := o.Env("BULKHEAD_TOKEN"); ok && strings.TrimSpace(v) != "" {
		c.token = strings.TrimSpace(v)
		c.sources["token"] = Source{Kind: FromEnv, Where: "BULKHEAD_TOKEN"}
	} else if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		switch {
		case err != nil:
			errs = append(errs, c.at("token_file", fmt.Errorf("%w", err)))
		case strings.TrimSpace(string(b)) == "":
			errs = append(errs, c.at("token_file", fmt.Errorf("%s is empty", c.TokenFile)))
		default:
			c.token = strings.TrimSpace(string(b))
			c.sources["token"] = c.sources["token_file"]
		}
	}
	for _, ke := range c.validate() {
		errs = append(errs, c.at(ke.key, ke.err))
	}
	if len(errs) == 0 && !Loopback(c.Listen) {
		switch {
		case c.token == "":
			errs = append(errs, c.at("listen", fmt.Errorf("%s: %w", c.Listen, ErrNoToken)))
		case len(c.token) < MinTokenLen:
			errs = append(errs, c.at("token", fmt.Errorf("%d characters with listen %s: %w", len(c.token), c.Listen, ErrShortToken)))
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// at prefixes err with where key's value came from.
func (c *Config) at(key string, err error) error {
	src, ok := c.sources[key]
	if !ok && strings.HasPrefix(key, "resilience.policy") {
		src, ok = c.sources["resilience.policy"]
	}
	if !ok {
		return fmt.Errorf("%s: %w", key, err)
	}
	switch src.Kind {
	case FromFile:
		return fmt.Errorf("%s: %s: %w", src.Where, key, err)
	case FromEnv, FromFlag:
		return fmt.Errorf("%s %s: %s: %w", src.Kind, src.Where, key, err)
	}
	return fmt.Errorf("%s: %w", key, err)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// readFile decodes path strictly into c and records the line of every
// value it sets.
func (c *Config) readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	c.file = path
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	derr := dec.Decode(c)
	if errors.Is(derr, io.EOF) {
		derr = nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fileError(path, err)
	}
	if derr != nil {
		var te *yaml.TypeError
		if !errors.As(derr, &te) && len(root.Content) > 0 {
			// A value's own decoder failed (a malformed duration or
			// size) and yaml.v3 did not say where: find the leaf.
			if err := locate(path, root.Content[0]); err != nil {
				return err
			}
		}
		return fileError(path, derr)
	}
	if len(root.Content) == 0 {
		return nil
	}
	walk(root.Content[0], "", func(key string, n *yaml.Node) {
		c.sources[key] = Source{Kind: FromFile, Where: fmt.Sprintf("%s:%d", path, n.Line)}
	})
	if pn := lookup(root.Content[0], "resilience", "policy"); pn != nil {
		c.policyNode = pn
		c.sources["resilience.policy"] = Source{Kind: FromFile, Where: fmt.Sprintf("%s:%d", path, pn.Line)}
	}
	return nil
}

// fileError rewrites yaml.v3's "line N: msg" as "FILE:N: msg", one line
// per problem.
func fileError(path string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			m = strings.TrimPrefix(m, sm[0])
			m = strings.Replace(m, " in type config.Config", "", 1)
			m = typeName.ReplaceAllString(m, "")
			errs = append(errs, fmt.Errorf("%s:%s: %s", path, sm[1], m))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", path, strings.TrimPrefix(m, "yaml: ")))
		}
	}
	return errors.Join(errs...)
}

var typeName = regexp.MustCompile(` in type [\w.]+`)

// locate decodes each leaf of root alone and returns the failures with
// their lines.
func locate(path string, root *yaml.Node) error {
	var errs []error
	walk(root, "", func(key string, leaf *yaml.Node) {
		doc := leaf
		parts := strings.Split(key, ".")
		for i := len(parts) - 1; i >= 0; i-- {
			doc = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: parts[i]}, doc}}
		}
		b, err := yaml.Marshal(doc)
		if err != nil {
			return
		}
		var scratch Config
		if err := yaml.Unmarshal(b, &scratch); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %s", path, leaf.Line, key, strings.TrimPrefix(err.Error(), "yaml: ")))
		}
	})
	return errors.Join(errs...)
}

// walk calls f for every scalar leaf of a mapping, with its dotted key.
func walk(n *yaml.Node, prefix string, f func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		if prefix != "" {
			f(prefix, n)
		}
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if prefix != "" {
			k = prefix + "." + k
		}
		walk(n.Content[i+1], k, f)
	}
}

func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, p := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// Settings returns every effective value with its source, in a stable
// order: the scalar settings, then each field of the effective policy.
// The token is never shown.
func (c *Config) Settings() []Setting {
	var out []Setting
	for _, fd := range fields {
		s := Setting{Key: fd.key, Value: fd.get(c), Source: c.sources[fd.key]}
		if fd.key == "cache_dir" && s.Source.Kind == FromDefault {
			s.Source.Where = "data_dir/cache"
		}
		if fd.key == "store.url" {
			s.Value = server.RedactURL(s.Value)
		}
		out = append(out, s)
	}
	tok := Setting{Key: "token", Value: "(none)", Source: Source{Kind: FromDefault}}
	if c.token != "" {
		tok.Value, tok.Source = "(set, hidden)", c.sources["token"]
	}
	out = append(out, tok)
	p, err := c.Policy()
	if err != nil {
		return out
	}
	var pn yaml.Node
	if err := pn.Encode(p); err != nil {
		return out
	}
	base := Source{Kind: FromPreset, Where: c.Resilience.Preset}
	if !c.ResilienceEnabled() {
		base = Source{Kind: c.sources["resilience.enabled"].Kind, Where: "resilience disabled"}
	}
	var pol []Setting
	walk(&pn, "", func(k string, n *yaml.Node) {
		key := "resilience.policy." + k
		src, ok := c.sources[key]
		if !ok || !c.ResilienceEnabled() {
			src = base
		}
		pol = append(pol, Setting{Key: key, Value: n.Value, Source: src})
	})
	slices.SortStableFunc(pol, func(a, b Setting) int { return strings.Compare(a.Key, b.Key) })
	return append(out, pol...)
}
