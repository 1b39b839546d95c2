package abi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bulkhead-run/bulkhead/internal/duration"
)

// Manifest is what the host needs to know to run one plugin: its limits, its
// sandbox and its instance pool. It is plain data, read from a plugin's
// sidecar file or from flags; the zero value of each field means its default.
type Manifest struct {
	// Memory caps the linear memory of one instance (default 64 MiB).
	Memory Size `json:"memory,omitempty" yaml:"memory,omitempty"`
	// MaxInput, MaxOutput and MaxLogLine cap the bytes of a call's input,
	// its output and one log line.
	MaxInput   Size `json:"max_input,omitempty" yaml:"max_input,omitempty"`
	MaxOutput  Size `json:"max_output,omitempty" yaml:"max_output,omitempty"`
	MaxLogLine Size `json:"max_log_line,omitempty" yaml:"max_log_line,omitempty"`
	// MaxError caps the message a guest sets with error_set (default
	// 64 KiB); a longer one is cut and ends by saying how many bytes were
	// dropped, in the call's error, logs, run record and dead letters.
	MaxError Size `json:"max_error,omitempty" yaml:"max_error,omitempty"`
	// LogLinesPerSecond and LogBytesPerSecond cap the guest log lines one
	// plugin writes, across its instances (default 100 lines and 256 KiB a
	// second, with a burst of one second's worth); lines over the rate are
	// dropped and counted in one summary line at most every second.
	LogLinesPerSecond int64 `json:"log_lines_per_second,omitempty" yaml:"log_lines_per_second,omitempty"`
	LogBytesPerSecond Size  `json:"log_bytes_per_second,omitempty" yaml:"log_bytes_per_second,omitempty"`
	// MaxCheckpoint caps one checkpoint (default 4 MiB, at most 256 MiB).
	// The store keeps the newest checkpoints of a node (10 unless the host
	// is configured otherwise), so a node of a run holds at most ten times
	// MaxCheckpoint.
	MaxCheckpoint Size `json:"max_checkpoint,omitempty" yaml:"max_checkpoint,omitempty"`
	// StateKeys and StateBytes are the quota of the plugin's durable state
	// (default 10,000 keys and 64 MiB, counting the bytes of keys and
	// values); a state_set that would go past either returns HostQuota.
	StateKeys  int64 `json:"state_keys,omitempty" yaml:"state_keys,omitempty"`
	StateBytes Size  `json:"state_bytes,omitempty" yaml:"state_bytes,omitempty"`
	// Timeout bounds one call (one attempt) when the caller sets no shorter
	// deadline. Zero means the host's default (30 s).
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// CPUBudget bounds the fuel one call may burn, in units of about one Wasm
	// instruction. Zero means no budget beyond the timeout.
	CPUBudget int64 `json:"cpu_budget,omitempty" yaml:"cpu_budget,omitempty"`
	// Pool sizes the instance pool.
	Pool Pool `json:"pool,omitempty" yaml:"pool,omitempty"`
	// AllowedHosts are host name globs the guest may reach with http_request,
	// at every redirect hop. A link-local or cloud metadata address is
	// reached only when an entry names it (not through a name resolving to
	// it, nor through "*").
	AllowedHosts []string `json:"allowed_hosts,omitempty" yaml:"allowed_hosts,omitempty"`
	// AllowedPaths maps a host directory to the guest path it is mounted
	// at. A host directory prefixed with "ro:" is mounted read-only.
	AllowedPaths map[string]string `json:"allowed_paths,omitempty" yaml:"allowed_paths,omitempty"`
	// Config is what the guest reads with config_get.
	Config map[string]string `json:"config,omitempty" yaml:"config,omitempty"`

	// MaxStack bounds the call stack of one call (default 4 MiB, at most
	// 1 GiB). A function call takes 64 bytes plus 16 per parameter, local
	// and value it holds on the operand stack at a call until it returns
	// (at or above what its compiled frame uses), so the default allows
	// about 37 000 nested calls of a function like fib(n); a call that
	// would go deeper traps as a stack overflow. The stack comes on
	// top of Memory: an instance may take Memory of linear memory plus up
	// to twice MaxStack of host memory for the stack of the call it runs
	// (the runtime doubles its stack buffer as it grows). Only metered
	// modules are bounded so; an unmetered one overflows at the runtime's
	// own limit, after taking over 100 MiB.
	MaxStack Size `json:"max_stack,omitempty" yaml:"max_stack,omitempty"`

	// Engine names the engine that runs the plugin: EngineNative or
	// EngineExtism. Empty means the host's default.
	Engine string `json:"engine,omitempty" yaml:"engine,omitempty"`
}

// Engines a manifest can name.
const (
	// EngineNative is bulkhead's own implementation of the Extism ABI.
	EngineNative = "native"
	// EngineExtism is Extism's go-sdk, the reference implementation.
	EngineExtism = "extism"
)

// ValidateEngine reports whether name is an engine ("" is the default).
func ValidateEngine(name string) error {
	switch name {
	case "", EngineNative, EngineExtism:
		return nil
	}
	return fmt.Errorf("engine %q is not %q or %q", name, EngineNative, EngineExtism)
}

// Pool sizes the instance pool of one plugin version.
type Pool struct {
	// Min instances are kept warm (default 0).
	Min int `json:"min,omitempty" yaml:"min,omitempty"`
	// Max instances exist at once; callers beyond it wait (default 2 × GOMAXPROCS).
	Max int `json:"max,omitempty" yaml:"max,omitempty"`
	// IdleTimeout closes instances above Min unused that long (default 1 min).
	IdleTimeout Duration `json:"idle_timeout,omitempty" yaml:"idle_timeout,omitempty"`
}

// Validate reports every problem of m at once.
func (m Manifest) Validate() error {
	var errs []error
	if m.Memory != 0 && m.Memory < 2<<20 {
		errs = append(errs, fmt.Errorf("memory %s is below the 2 MiB minimum", m.Memory))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_input", int64(m.MaxInput)}, {"max_output", int64(m.MaxOutput)}, {"max_log_line", int64(m.MaxLogLine)},
		{"max_error", int64(m.MaxError)}, {"log_lines_per_second", m.LogLinesPerSecond},
		{"log_bytes_per_second", int64(m.LogBytesPerSecond)}, {"max_checkpoint", int64(m.MaxCheckpoint)},
		{"state_keys", m.StateKeys}, {"state_bytes", int64(m.StateBytes)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if m.MaxCheckpoint > MaxCheckpointLimit {
		errs = append(errs, fmt.Errorf("max_checkpoint %s is over the %s maximum", m.MaxCheckpoint, Size(MaxCheckpointLimit)))
	}
	if m.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	if m.CPUBudget < 0 {
		errs = append(errs, errors.New("cpu_budget must not be negative"))
	}
	if m.Pool.Min < 0 || m.Pool.Max < 0 {
		errs = append(errs, errors.New("pool sizes must not be negative"))
	}
	if m.Pool.Max > 0 && m.Pool.Min > m.Pool.Max {
		errs = append(errs, fmt.Errorf("pool min %d exceeds max %d", m.Pool.Min, m.Pool.Max))
	}
	if m.MaxStack < 0 || m.MaxStack > MaxStackLimit {
		errs = append(errs, fmt.Errorf("max_stack %s is out of range (0 to %s)", m.MaxStack, Size(MaxStackLimit)))
	}
	if err := ValidateEngine(m.Engine); err != nil {
		errs = append(errs, err)
	}
	for hostDir, guestDir := range m.AllowedPaths {
		if strings.TrimPrefix(hostDir, "ro:") == "" || guestDir == "" {
			errs = append(errs, fmt.Errorf("allowed path %q:%q needs both a host and a guest directory", hostDir, guestDir))
		}
	}
	return errors.Join(errs...)
}

// Size is a number of bytes. As text it reads "64MiB", "512KiB", "1MB",
// "4096" and prints in the largest binary unit that divides it.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10},
	{"B", 1},
}

// ParseSize parses a size such as "64MiB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return 0, fmt.Errorf("abi: invalid size %q (want e.g. 64MiB, 512KiB or 4096)", s)
	}
	return Size(n * mult), nil
}

func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("250ms", "30s") in YAML and JSON. "" and 0 read as zero (not set: the
// default applies), JSON null leaves the value unchanged, any other bare
// number is refused. It is the same type as resilience.Duration.
type Duration = duration.Duration
