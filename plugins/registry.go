package plugins

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/internal/digest"
)

// Sentinel errors.
var (
	// ErrNotFound: no module file for that plugin name.
	ErrNotFound = errors.New("plugins: not found")
	// ErrInvalidName: the name is not a plugin name ([a-zA-Z0-9_.-]+, no
	// leading dot).
	ErrInvalidName = errors.New("plugins: invalid plugin name")
	// ErrUnstable: the file kept changing while it was read.
	ErrUnstable = errors.New("plugins: file is being written")
	// ErrStarted: Start was called twice, or after Stop.
	ErrStarted = errors.New("plugins: registry already started")
	// ErrTooLarge: a module is over the size cap (WithMaxModuleSize), or
	// a sidecar over MaxManifestSize.
	ErrTooLarge = errors.New("plugins: file too large")
	// ErrOutsideDir: the file is a symbolic link that leads outside the
	// plugin directory.
	ErrOutsideDir = errors.New("plugins: symbolic link leads outside the plugin directory")
)

// File name suffixes of a plugin's module and its sidecar manifest.
const (
	ModuleExt   = ".wasm"
	ManifestExt = ".yaml"
)

// Defaults of the options.
const (
	DefaultDebounce       = 100 * time.Millisecond
	DefaultRescanInterval = 2 * time.Second
	DefaultMaxModuleSize  = 256 << 20
)

// Kind says what happened to a plugin.
type Kind int

// Event kinds.
const (
	// Added: a module file appeared (or was present at Start).
	Added Kind = iota + 1
	// Changed: the module's bytes changed (a new Version).
	Changed
	// Removed: the module file is gone.
	Removed
	// ManifestChanged: the sidecar manifest was written, fixed, broken or
	// removed while the module stayed the same.
	ManifestChanged
)

func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	case ManifestChanged:
		return "manifest-changed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one change of one plugin.
type Event struct {
	Kind Kind
	// Name is the plugin name: the module's file name without ".wasm".
	Name string
	// Version is the hex SHA-256 of the module bytes (for Removed, of the
	// last version seen).
	Version string
	// Bytes are the module bytes of Version, set for Added and Changed
	// only. Receivers own them.
	Bytes []byte
	// Manifest is the manifest in force: the sidecar's if it parsed, the
	// last one that parsed if the sidecar is now broken, the zero
	// Manifest if there is no sidecar.
	Manifest Manifest
	// Path is the module file's path.
	Path string
	// Err is the current sidecar's problem (a *ManifestError, possibly
	// joined), nil when the sidecar is fine or absent. With Err set and
	// Invalid false, Manifest is the last good one and stays in force.
	Err error
	// Invalid: the plugin has had no usable manifest since it appeared
	// (its sidecar was broken from the start), or, for Added and Changed
	// without Bytes or Version, its module file is refused (Err is then a
	// *FileError). Do not load it; Err says why. A later ManifestChanged
	// with Invalid false, or a new module file, makes it usable.
	Invalid bool
}

// Info is the registry's view of one plugin.
type Info struct {
	Name    string
	Version string
	Path    string
	Size    int64
	ModTime time.Time
	// Manifest, ManifestErr and Invalid mean what Event's Manifest, Err
	// and Invalid mean.
	Manifest    Manifest
	ManifestErr error
	Invalid     bool
	// ModuleErr is why the module file is refused (a *FileError: over the
	// size cap, or a symbolic link that leads outside the directory);
	// Version is then empty.
	ModuleErr error
}

// Option configures a Registry.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	handler   func(Event)
	logger    *slog.Logger
	debounce  time.Duration
	rescan    time.Duration
	fsnotify  bool
	validator func(preset string, raw []byte) error
	maxModule int64
	now       func() time.Time              // the debounce's clock; tests replace it
	scheduled func(path string, size int64) // tests see each (re)started debounce
}

// WithHandler sets the function that receives every event (see the
// package documentation for the delivery guarantee). Without one, events
// are discarded and the registry only answers List, Get and Read.
func WithHandler(h func(Event)) Option { return optionFunc(func(o *options) { o.handler = h }) }

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithDebounce sets how long a file must see no change before it is read
// (default DefaultDebounce). It is also the gap between the two looks of
// the stability check. It must be positive.
func WithDebounce(d time.Duration) Option { return optionFunc(func(o *options) { o.debounce = d }) }

// WithRescanInterval sets the period of the rescan that catches changes
// the file watcher missed (default DefaultRescanInterval). Zero or less
// disables it.
func WithRescanInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.rescan = d })
}

// WithMaxModuleSize sets the largest module file the registry reads
// (default DefaultMaxModuleSize). A larger one is refused from its size,
// without being read; it must be positive.
func WithMaxModuleSize(n int64) Option { return optionFunc(func(o *options) { o.maxModule = n }) }

// WithFSNotify turns the file watcher on (the default) or off. With it
// off, only the periodic rescan sees changes.
func WithFSNotify(enabled bool) Option { return optionFunc(func(o *options) { o.fsnotify = enabled }) }

// WithPolicyValidator sets a check of each sidecar's preset ("" when
// absent) and policy section (raw YAML, nil when absent), run whenever a
// sidecar that parses is read, by the watcher and by Read. A
// sidecar it rejects is a broken sidecar: its error, wrapped in a
// *ManifestError at the policy (or preset) line, shows in events and Info.
func WithPolicyValidator(v func(preset string, raw []byte) error) Option {
	return optionFunc(func(o *options) { o.validator = v })
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)

// ValidName reports whether name is a plugin name: [a-zA-Z0-9_.-]+ with no
// leading dot (a hidden file) and no leading dash (it would read as a flag
// in "bulkhead plugins reload NAME").
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Registry is the catalogue of one plugin directory. Its methods are safe
// for concurrent use.
type Registry struct {
	dir  string
	opts options
	log  *slog.Logger

	mu       sync.RWMutex
	plugins  map[string]*plugin  // by name; only names whose module was read
	sidecars map[string]*sidecar // by name; names whose sidecar was read
	started  bool
	stopped  bool
	q        *queue
	cancel   func()
	loopDone chan struct{}
}

// plugin is the state of one module file.
type plugin struct {
	path    string
	version string // "" when refused
	stat    fileStat
	refused error // a *FileError
}

// sidecar is the state of one manifest file.
type sidecar struct {
	stat    fileStat
	sum     string   // SHA-256 of the bytes last read
	good    Manifest // last manifest that parsed
	hasGood bool
	err     error // problem of the current bytes
}

// New returns a registry of dir. It does no I/O and starts nothing.
func New(dir string, opts ...Option) (*Registry, error) {
	o := options{now: time.Now, debounce: DefaultDebounce, rescan: DefaultRescanInterval, fsnotify: true, maxModule: DefaultMaxModuleSize}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if dir == "" {
		return nil, errors.New("plugins: empty directory")
	}
	if o.debounce <= 0 {
		return nil, fmt.Errorf("plugins: debounce %v must be positive", o.debounce)
	}
	if o.maxModule <= 0 {
		return nil, fmt.Errorf("plugins: max module size %d must be positive", o.maxModule)
	}
	if !o.fsnotify && o.rescan <= 0 {
		return nil, errors.New("plugins: with the file watcher off, the rescan interval must be positive")
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		dir:      dir,
		opts:     o,
		log:      log,
		plugins:  make(map[string]*plugin),
		sidecars: make(map[string]*sidecar),
	}, nil
}

// Dir is the plugin directory.
func (r *Registry) Dir() string { return r.dir }

// List returns every plugin whose module file has been read, sorted by name.
func (r *Registry) List() []Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Info, 0, len(r.plugins))
	for name := range r.plugins {
		out = append(out, r.infoLocked(name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns one plugin.
func (r *Registry) Get(name string) (Info, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.plugins[name]; !ok {
		return Info{}, false
	}
	return r.infoLocked(name), true
}

func (r *Registry) infoLocked(name string) Info {
	p := r.plugins[name]
	m, merr, invalid := r.manifestLocked(name)
	return Info{
		Name: name, Version: p.version, Path: p.path, Size: p.stat.size, ModTime: p.stat.mtime,
		Manifest: m, ManifestErr: merr, Invalid: invalid, ModuleErr: p.refused,
	}
}

// manifestLocked returns the manifest in force for name, the current
// sidecar problem and whether the plugin is invalid.
func (r *Registry) manifestLocked(name string) (Manifest, error, bool) {
	s, ok := r.sidecars[name]
	if !ok {
		return Manifest{}, nil, false
	}
	return s.good, s.err, !s.hasGood
}

// Read reads the module and sidecar of name from disk now, bypassing the
// debounce, so a caller that rebuilds a plugin gets the file as it is at
// that moment. The module must be unchanged across the read (size, mtime
// and file identity before and after), else ErrUnstable. It returns the
// bytes, their version and the manifest in force: the sidecar as read now,
// or, if it is broken, the last good one the registry knows; if there is
// none, the sidecar's *ManifestError. A missing module is ErrNotFound.
func (r *Registry) Read(name string) ([]byte, string, Manifest, error) {
	if !ValidName(name) {
		return nil, "", Manifest{}, fmt.Errorf("%w %q", ErrInvalidName, name)
	}
	path := filepath.Join(r.dir, name+ModuleExt)
	var b []byte
	var err error
	for range 3 {
		var st fileStat
		b, st, err = r.readStable(path, true)
		if err == nil && st.exists {
			break
		}
		if err == nil {
			return nil, "", Manifest{}, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if !errors.Is(err, ErrUnstable) {
			return nil, "", Manifest{}, err
		}
	}
	if err != nil {
		return nil, "", Manifest{}, fmt.Errorf("read %s: %w", path, err)
	}
	m, merr := r.readSidecar(name)
	return b, digest.Of(b), m, merr
}

func (r *Registry) readSidecar(name string) (Manifest, error) {
	path := filepath.Join(r.dir, name+ManifestExt)
	b, st, err := r.readStable(path, false)
	if err == nil && !st.exists {
		return Manifest{}, nil
	}
	if err == nil {
		m, perr := r.parse(path, b)
		if perr == nil {
			return m, nil
		}
		err = perr
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.sidecars[name]; ok {
		if s.hasGood {
			return s.good, nil
		}
	} else if _, running := r.plugins[name]; running {
		return Manifest{}, nil // it ran without a sidecar, with the zero manifest
	}
	return Manifest{}, err
}

// parse parses a sidecar and runs the policy validator on it.
func (r *Registry) parse(path string, b []byte) (Manifest, error) {
	m, pos, err := parseManifest(path, b)
	if err != nil || r.opts.validator == nil {
		return m, err
	}
	if verr := r.opts.validator(m.Preset, m.PolicyYAML); verr != nil {
		line := pos.policy
		if line == 0 {
			line = pos.preset
		}
		return Manifest{}, &ManifestError{File: path, Line: line, Err: verr}
	}
	return m, nil
}

// fileKind classifies a directory entry name: a module, a sidecar or
// neither, and returns the plugin name.
func fileKind(base string) (name string, module, ok bool) {
	switch {
	case strings.HasPrefix(base, "."):
		return "", false, false
	case strings.HasSuffix(base, ModuleExt):
		name, module = strings.TrimSuffix(base, ModuleExt), true
	case strings.HasSuffix(base, ManifestExt):
		name = strings.TrimSuffix(base, ManifestExt)
	default:
		return "", false, false
	}
	if !ValidName(name) {
		return "", false, false
	}
	return name, module, true
}
