package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// Config is the effective configuration of `bulkhead serve`. The zero value
// of a field means its documented default (Defaults fills them in).
type Config struct {
	// Listen is the HTTP listen address. Default 127.0.0.1:7070.
	Listen string `yaml:"listen"`
	// PublicNames are the names ("host" or "host:port") clients reach the
	// service by besides its loopback names and the listen host, such as
	// the name a reverse proxy forwards. Without a token, a request whose
	// Host header names none of them is refused (DNS rebinding). Their
	// http and https origins count as the service's own.
	PublicNames []string `yaml:"public_names"`
	// TokenFile holds the bearer token (trimmed). BULKHEAD_TOKEN, an
	// environment-only setting, wins over it.
	TokenFile string `yaml:"token_file"`
	// PluginsDir is the plugin directory. Default "plugins".
	PluginsDir string `yaml:"plugins_dir"`
	// WorkflowsDir is the workflow directory. Default "workflows".
	WorkflowsDir string `yaml:"workflows_dir"`
	// DataDir holds the state store (the checkpoint directory).
	// Default ".bulkhead".
	DataDir string `yaml:"data_dir"`
	// CacheDir holds compiled code. Default DataDir/cache.
	CacheDir string `yaml:"cache_dir"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`
	// Dashboard serves the HTML dashboard at /. Default true.
	Dashboard *bool `yaml:"dashboard"`

	Resilience Resilience `yaml:"resilience"`
	HTTP       HTTP       `yaml:"http"`
	Limits     Limits     `yaml:"limits"`
	Plugins    Plugins    `yaml:"plugins"`
	Store      Store      `yaml:"store"`
	Drain      Drain      `yaml:"drain"`

	token      string
	sources    map[string]Source
	file       string
	policyNode *yaml.Node
}

// Resilience is the default policy of plugin calls and the health checks.
type Resilience struct {
	// Enabled turns the resilience pipeline on
	// (RESILIENCE_ENABLED). Off: one attempt, no breaker, no limiter.
	// Default true.
	Enabled *bool `yaml:"enabled"`
	// Preset names the base policy (resilience.PresetNames). Default
	// production.
	Preset string `yaml:"preset"`
	// Policy overrides fields of the preset: the fields it sets replace
	// the preset's, the others keep the preset's values. Use Policy() for
	// the effective policy.
	Policy *resilience.Policy `yaml:"policy"`
	// HealthCheckInterval is how often components are checked
	// (RESILIENCE_HEALTH_CHECK_INTERVAL; a bare number is milliseconds).
	// Default 30s.
	HealthCheckInterval resilience.Duration `yaml:"health_check_interval"`
}

// HTTP holds the server's timeouts.
type HTTP struct {
	ReadHeaderTimeout resilience.Duration `yaml:"read_header_timeout"` // default 5s
	ReadTimeout       resilience.Duration `yaml:"read_timeout"`        // default 30s
	WriteTimeout      resilience.Duration `yaml:"write_timeout"`       // default 5m
	IdleTimeout       resilience.Duration `yaml:"idle_timeout"`        // default 2m
}

// Limits bound what a client may send.
type Limits struct {
	// MaxBody caps a request body. Default 4MiB.
	MaxBody abi.Size `yaml:"max_body"`
	// MaxRunInput caps a run's input. Default 1MiB.
	MaxRunInput abi.Size `yaml:"max_run_input"`
}

// Plugins bounds what a plugin file may cost before it serves.
type Plugins struct {
	// MaxModuleSize caps a module file; a larger one is refused without
	// being read. Default 256MiB.
	MaxModuleSize abi.Size `yaml:"max_module_size"`
	// StartTimeout bounds a module's start function when it is loaded;
	// one still running then is refused. Default 5s.
	StartTimeout resilience.Duration `yaml:"start_timeout"`
	// Engine runs plugins whose manifest names none: "native" (bulkhead's
	// own Extism-ABI runtime) or "extism" (Extism's go-sdk). Default native.
	Engine string `yaml:"engine"`
}

// Store configures the state store.
type Store struct {
	// URL selects the store: "" is the embedded store in DataDir; a
	// postgres:// or postgresql:// URL is a PostgreSQL database (libpq's
	// URL form; PGPASSWORD, PGSSLMODE and the other libpq variables
	// apply). Its password is never printed.
	URL string `yaml:"url"`
	// Retention keeps finished runs this long. Default 168h.
	Retention resilience.Duration `yaml:"retention"`
	// MaxCheckpoints kept per run and node (RESILIENCE_* users know it as maxCheckpoints).
	// Default 10.
	MaxCheckpoints int `yaml:"max_checkpoints"`
	// FreeSpaceReserve is the free space writes leave on the data
	// directory's file system: a write that would cut into it is refused
	// (507 from the API). Default 128MiB.
	FreeSpaceReserve abi.Size `yaml:"free_space_reserve"`
	// HostID names this host in the store's claims and in what it
	// records (the host that ran a node). Every live host sharing a
	// database needs its own; a host restarted under the ID of one that
	// died takes back the nodes it held at once. Default: host name,
	// process ID and a random suffix.
	HostID string `yaml:"host_id"`
	// Lease is how long a node this host runs stays its own without a
	// heartbeat: when the host dies or freezes, another host sharing the
	// database runs the node after at most this long. Default 15s.
	Lease resilience.Duration `yaml:"lease"`
	// Heartbeat is how often the service tells the store it is alive;
	// hosts sharing a store list one that missed three as stale.
	// Default 2s.
	Heartbeat resilience.Duration `yaml:"heartbeat"`
}

// Drain configures shutdown.
type Drain struct {
	// GracePeriod is how long running nodes may finish after SIGTERM
	// before they are cancelled (to resume on the next start). Default 30s.
	GracePeriod resilience.Duration `yaml:"grace_period"`
}

// Defaults.
const (
	DefaultListen              = server.DefaultListen
	DefaultPluginsDir          = server.DefaultPluginsDir
	DefaultWorkflowsDir        = server.DefaultWorkflowsDir
	DefaultDataDir             = server.DefaultDataDir
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "text"
	DefaultPreset              = resilience.PresetProduction
	DefaultHealthCheckInterval = server.DefaultHealthCheckInterval
	DefaultReadHeaderTimeout   = 5 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 5 * time.Minute
	DefaultIdleTimeout         = 2 * time.Minute
	DefaultMaxBody             = 4 << 20
	DefaultMaxRunInput         = 1 << 20
	DefaultMaxModuleSize       = 256 << 20
	DefaultStartTimeout        = 5 * time.Second
	DefaultRetention           = 7 * 24 * time.Hour
	DefaultMaxCheckpoints      = 10
	DefaultFreeSpaceReserve    = 128 << 20
	DefaultLease               = 15 * time.Second
	DefaultHeartbeat           = 2 * time.Second
	DefaultGracePeriod         = server.DefaultGracePeriod
)

// Token returns the bearer token (from BULKHEAD_TOKEN or TokenFile), ""
// when none is set.
func (c *Config) Token() string { return c.token }

// File returns the configuration file that was read, "" when none.
func (c *Config) File() string { return c.file }

// ResilienceEnabled reports Resilience.Enabled with its default.
func (c *Config) ResilienceEnabled() bool {
	return c.Resilience.Enabled == nil || *c.Resilience.Enabled
}

// DashboardEnabled reports Dashboard with its default.
func (c *Config) DashboardEnabled() bool { return c.Dashboard == nil || *c.Dashboard }

// Policy returns the default policy of plugin calls: the preset, with the
// policy section over it; with resilience disabled, one attempt and no
// breaker or limiter.
func (c *Config) Policy() (resilience.Policy, error) {
	if !c.ResilienceEnabled() {
		return Disabled(), nil
	}
	return PolicyOf(c.Resilience.Preset, c.policyNode)
}

// Disabled is the policy used when resilience is off: a single attempt,
// a breaker that never opens, no limiter.
func Disabled() resilience.Policy {
	return resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureThreshold: -1},
		Retry:   resilience.RetryPolicy{MaxAttempts: 1},
	}
}

// PolicyOf returns the named preset with the fields set in the YAML
// mapping overrides (nil: none) laid over it, validated.
func PolicyOf(preset string, overrides *yaml.Node) (resilience.Policy, error) {
	p, err := resilience.Preset(preset)
	if err != nil {
		return resilience.Policy{}, err
	}
	if overrides != nil {
		if err := overrides.Decode(&p); err != nil {
			return resilience.Policy{}, err
		}
	}
	if err := p.Validate(); err != nil {
		return resilience.Policy{}, err
	}
	return p, nil
}

// Loopback reports whether addr listens on loopback only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validate checks c (defaults applied) and returns one error per problem,
// each naming the key.
func (c *Config) validate() []keyError {
	var errs []keyError
	bad := func(key, format string, args ...any) {
		errs = append(errs, keyError{key: key, err: fmt.Errorf(format, args...)})
	}
	if err := checkHostPort(c.Listen, true); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	for _, n := range c.PublicNames {
		if err := checkHostPort(n, false); err != nil {
			bad("public_names", "%q: %v", n, err)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "%q: want text or json", c.LogFormat)
	}
	if _, err := resilience.Preset(c.Resilience.Preset); err != nil {
		bad("resilience.preset", "unknown preset %q (have %s)", c.Resilience.Preset, strings.Join(resilience.PresetNames(), ", "))
	} else if _, err := PolicyOf(c.Resilience.Preset, c.policyNode); err != nil {
		// Policy.Validate joins one error per field, each starting with
		// the field's YAML path.
		var joined interface{ Unwrap() []error }
		if u := errors.Unwrap(err); u != nil && errors.As(u, &joined) {
			for _, e := range joined.Unwrap() {
				path, msg, ok := strings.Cut(e.Error(), ": ")
				if !ok {
					path, msg = "", e.Error()
				}
				errs = append(errs, keyError{key: "resilience.policy." + path, err: errors.New(msg)})
			}
		} else {
			bad("resilience.policy", "%v", err)
		}
	}
	pos := func(key string, d resilience.Duration) {
		if d <= 0 {
			bad(key, "must be positive, got %s", d)
		}
	}
	pos("resilience.health_check_interval", c.Resilience.HealthCheckInterval)
	pos("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	pos("http.read_timeout", c.HTTP.ReadTimeout)
	pos("http.write_timeout", c.HTTP.WriteTimeout)
	pos("http.idle_timeout", c.HTTP.IdleTimeout)
	pos("store.retention", c.Store.Retention)
	pos("store.heartbeat", c.Store.Heartbeat)
	pos("drain.grace_period", c.Drain.GracePeriod)
	if c.Store.Lease < resilience.Duration(100*time.Millisecond) {
		bad("store.lease", "must be at least 100ms, got %s", c.Store.Lease)
	}
	pos("plugins.start_timeout", c.Plugins.StartTimeout)
	if err := abi.ValidateEngine(c.Plugins.Engine); err != nil {
		bad("plugins.engine", "%v", err)
	}
	if c.Plugins.MaxModuleSize <= 0 {
		bad("plugins.max_module_size", "must be positive, got %s", c.Plugins.MaxModuleSize)
	}
	if c.Limits.MaxBody <= 0 {
		bad("limits.max_body", "must be positive, got %s", c.Limits.MaxBody)
	}
	if c.Limits.MaxRunInput <= 0 {
		bad("limits.max_run_input", "must be positive, got %s", c.Limits.MaxRunInput)
	}
	if c.Store.MaxCheckpoints < 1 {
		bad("store.max_checkpoints", "must be at least 1, got %d", c.Store.MaxCheckpoints)
	}
	if c.Store.FreeSpaceReserve <= 0 {
		bad("store.free_space_reserve", "must be positive, got %s", c.Store.FreeSpaceReserve)
	}
	if err := server.CheckStoreURL(c.Store.URL); err != nil {
		bad("store.url", "%v", err)
	}
	for _, k := range []struct{ key, v string }{{"plugins_dir", c.PluginsDir}, {"workflows_dir", c.WorkflowsDir}, {"data_dir", c.DataDir}} {
		if k.v == "" {
			bad(k.key, "must not be empty")
		}
	}
	return errs
}

// checkHostPort checks a HOST:PORT (HOST alone too unless needPort), whose
// port is a number from 0 to 65535.
func checkHostPort(s string, needPort bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if needPort || strings.ContainsAny(s, ":/[]") {
			return errors.New("want HOST:PORT")
		}
		host = s
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if !needPort && host == "" {
		return errors.New("empty host")
	}
	if strings.ContainsAny(host, "/ @?#") {
		return fmt.Errorf("host %q is not a name or an address", host)
	}
	return nil
}

// MinTokenLen is the shortest token accepted on a non-loopback address.
const MinTokenLen = 16

// ErrShortToken: a non-loopback listen address needs a token of at least
// MinTokenLen characters.
var ErrShortToken = fmt.Errorf("config: a token on a non-loopback address needs at least %d characters", MinTokenLen)

// ErrNoToken: a non-loopback listen address needs a token.
var ErrNoToken = errors.New("config: listening on a non-loopback address needs a token (BULKHEAD_TOKEN or token_file)")

type keyError struct {
	key string
	err error
}
