package plugins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
)

// MaxManifestSize is the largest sidecar manifest ParseManifest accepts.
const MaxManifestSize = 1 << 20

// Manifest is the schema of a plugin's sidecar file NAME.yaml: the limits,
// sandbox, pool and config of abi.Manifest (inline, at the top level), the
// name of a resilience preset and an optional inline resilience policy.
//
//	memory: 64MiB
//	timeout: 2s
//	cpu_budget: 50000000   # fuel per call, about one Wasm instruction a unit
//	max_error: 64KiB       # a guest's error message
//	log_lines_per_second: 100
//	log_bytes_per_second: 256KiB
//	max_checkpoint: 4MiB   # one checkpoint; a node keeps store.max_checkpoints
//	state_keys: 10000      # the plugin's durable state quota
//	state_bytes: 64MiB     # keys plus values
//	pool: {min: 1, max: 8, idle_timeout: 1m}
//	allowed_hosts: ["api.example.com"]
//	config: {region: eu}
//	preset: api
//	policy:
//	  retry: {attempts: 5}
//
// The zero value is the manifest of a plugin without a sidecar: every limit
// at its default, no preset, no policy.
type Manifest struct {
	abi.Manifest `yaml:",inline"`
	// Preset names a resilience preset ("production", "api", …). Empty
	// means the host's default.
	Preset string `json:"preset,omitempty" yaml:"preset,omitempty"`
	// PolicyYAML is the "policy" section as YAML text (a mapping), nil when
	// the sidecar has none. The registry does not interpret it; a
	// WithPolicyValidator option checks it when the sidecar is read.
	PolicyYAML []byte `json:"-" yaml:"-"`
}

// manifestFile is what a sidecar decodes into.
type manifestFile struct {
	abi.Manifest `yaml:",inline"`
	Preset       string    `yaml:"preset"`
	Policy       yaml.Node `yaml:"policy"`
}

// ManifestError is a problem of one sidecar manifest. Line is 1-based, or 0
// when the problem is not tied to one line (a limit that fails validation).
type ManifestError struct {
	File string
	Line int
	Err  error
}

func (e *ManifestError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, redact(e.Err.Error()))
	}
	return fmt.Sprintf("%s: %s", e.File, redact(e.Err.Error()))
}

// maxEcho is how much of a quoted key or value a manifest error repeats.
const maxEcho = 32

var quoted = regexp.MustCompile("`[^`]*`|\"(?:[^\"\\\\]|\\\\.)*\"")

// redact keeps a manifest error from repeating the file's content, which
// may not be a manifest at all: the YAML decoder's excerpts of a value
// (between backquotes) are dropped, and a quoted key or value longer than
// maxEcho bytes is cut.
func redact(msg string) string {
	msg = quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if q[0] == '`' {
			return ""
		}
		if len(q) <= maxEcho+2 {
			return q
		}
		cut := maxEcho + 1
		for cut > 1 && !utf8.RuneStart(q[cut]) {
			cut--
		}
		return q[:cut] + "…\""
	})
	return strings.Join(strings.Fields(msg), " ")
}

func (e *ManifestError) Unwrap() error { return e.Err }

// manifestPos records where the sections a policy validator checks start,
// so that its verdict can name a line.
type manifestPos struct {
	preset, policy int
}

// ParseManifest decodes and validates the sidecar manifest b. name is the
// file name used in errors. Unknown keys, malformed values and limits that
// fail abi.Manifest.Validate are errors; every error it returns is, or joins,
// *ManifestError values that name the file and, where it applies, the line.
// Empty input (or only comments) is the zero Manifest.
func ParseManifest(name string, b []byte) (Manifest, error) {
	m, _, err := parseManifest(name, b)
	return m, err
}

func parseManifest(file string, b []byte) (m Manifest, pos manifestPos, err error) {
	defer func() {
		// yaml.v3 is not known to panic on any input, but a panic in a
		// decoder must never take the registry down.
		if p := recover(); p != nil {
			m, pos, err = Manifest{}, manifestPos{}, &ManifestError{File: file, Err: fmt.Errorf("malformed manifest: %v", p)}
		}
	}()
	if len(b) > MaxManifestSize {
		return Manifest{}, pos, &ManifestError{File: file, Err: fmt.Errorf("manifest is %d bytes, larger than %d", len(b), MaxManifestSize)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Manifest{}, pos, nil
		}
		return Manifest{}, pos, syntaxError(file, b, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return Manifest{}, pos, syntaxError(file, b, err)
		}
		return Manifest{}, pos, &ManifestError{File: file, Line: extra.Line, Err: errors.New("a manifest is one YAML document")}
	}

	var mf manifestFile
	sdec := yaml.NewDecoder(bytes.NewReader(b))
	sdec.KnownFields(true)
	if err := sdec.Decode(&mf); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs := make([]error, 0, len(te.Errors))
			for _, msg := range te.Errors {
				errs = append(errs, typeError(file, msg))
			}
			return Manifest{}, pos, errors.Join(errs...)
		}
		// Errors of a value's UnmarshalText (a bad size or duration)
		// carry no line: find the value that fails.
		return Manifest{}, pos, &ManifestError{File: file, Line: locate(&doc), Err: err}
	}
	if err := mf.Manifest.Validate(); err != nil {
		return Manifest{}, pos, &ManifestError{File: file, Err: err}
	}
	m = Manifest{Manifest: mf.Manifest, Preset: mf.Preset}
	if root := docRoot(&doc); root != nil && root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			switch root.Content[i].Value {
			case "preset":
				pos.preset = root.Content[i].Line
			case "policy":
				pos.policy = root.Content[i].Line
			}
		}
	}
	switch p := &mf.Policy; {
	case p.Kind == 0, p.Kind == yaml.ScalarNode && p.Tag == "!!null":
	case p.Kind == yaml.MappingNode:
		// A yaml.Node holds duplicate keys; a map does not.
		var probe map[string]any
		if err := p.Decode(&probe); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				errs := make([]error, 0, len(te.Errors))
				for _, msg := range te.Errors {
					me := typeError(file, msg)
					me.Err = fmt.Errorf("policy: %w", me.Err)
					errs = append(errs, me)
				}
				return Manifest{}, pos, errors.Join(errs...)
			}
			return Manifest{}, pos, &ManifestError{File: file, Line: p.Line, Err: fmt.Errorf("policy: %w", err)}
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			return Manifest{}, pos, &ManifestError{File: file, Line: p.Line, Err: fmt.Errorf("policy: %w", err)}
		}
		m.PolicyYAML = out
	default:
		return Manifest{}, pos, &ManifestError{File: file, Line: p.Line, Err: errors.New("policy must be a mapping")}
	}
	return m, pos, nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return nil
}

var (
	lineMsg    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownKey = regexp.MustCompile(`^field (.*) not found in type \S+$`)
)

// parserProblems are the problems yaml.v3 reports with a 0-based line
// (its scanner errors carry a 1-based one).
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

func syntaxError(file string, b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := lineMsg.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserProblems[m[2]] {
			line++
		}
		return &ManifestError{File: file, Line: line, Err: errors.New(m[2])}
	}
	// yaml.v3 leaves out line 1, and its reader errors (control
	// characters, invalid UTF-8) carry no position at all.
	return &ManifestError{File: file, Line: badByteLine(b), Err: errors.New(msg)}
}

// badByteLine returns the line of the first byte YAML does not allow (a
// control character or invalid UTF-8), or 1.
func badByteLine(b []byte) int {
	line := 1
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return line
		case r == '\n':
			line++
		case r == '\t' || r == '\r' || r == 0x85 || r == 0xFEFF:
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return line
		}
		i += n
	}
	return 1
}

func typeError(file, msg string) *ManifestError {
	line := 0
	if m := lineMsg.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if m := unknownKey.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown key %q", m[1])
	}
	msg = strings.ReplaceAll(msg, "plugins.manifestFile", "a manifest")
	return &ManifestError{File: file, Line: line, Err: errors.New(msg)}
}

// locate returns the line of the deepest value of doc that fails to decode
// on its own, or 0. It decodes one key path at a time, so it only runs
// after a decode has already failed.
func locate(doc *yaml.Node) int {
	root := docRoot(doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return 0
	}
	return locateIn(nil, root)
}

func locateIn(path []*yaml.Node, m *yaml.Node) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		keys := append(path[:len(path):len(path)], k)
		if !failsAlone(keys, v) {
			continue
		}
		if v.Kind == yaml.MappingNode {
			if line := locateIn(keys, v); line > 0 {
				return line
			}
		}
		return v.Line
	}
	return 0
}

// failsAlone reports whether {k1: {k2: … {kn: v}}} fails to decode.
func failsAlone(keys []*yaml.Node, v *yaml.Node) bool {
	n := v
	for i := len(keys) - 1; i >= 0; i-- {
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{keys[i], n}}
	}
	var mf manifestFile
	return n.Decode(&mf) != nil
}
