package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// DefaultHeartbeat is the heartbeat interval when Config.Heartbeat is 0.
const DefaultHeartbeat = 2 * time.Second

// Store is what a member needs of the shared store.
type Store interface {
	statestore.Hosts
	statestore.Modules
}

// Config says who the host is.
type Config struct {
	// ID names the host; "" picks HOSTNAME-RANDOM, new at each start.
	ID string
	// Address returns where other hosts and operators reach this host's
	// API (read at each registration); nil: none.
	Address func() string
	// Version is the host's bulkhead version.
	Version string
	// Heartbeat is the interval of heartbeats (0: DefaultHeartbeat).
	Heartbeat time.Duration
}

// Invoker is what the workflow engine calls plugins through.
type Invoker interface {
	Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error)
	Plugin(name string) (host.PluginInfo, bool)
}

// Member is a host's membership in the fleet. Create it with New.
type Member struct {
	cfg   Config
	store Store
	h     *host.Host
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]*pendingModule // versions loaded, bytes not yet stored, by plugin@version
	kick    chan struct{}

	fetchMu sync.Mutex // one fetch at a time; fetches are rare

	life      sync.Mutex // guards cancel and done
	cancel    context.CancelFunc
	done      chan struct{}
	stopOnce  sync.Once
	beatFails bool // owned by the loop
}

// New returns a member of the fleet sharing store, for host h. log nil
// discards.
func New(store Store, h *host.Host, cfg Config, log *slog.Logger) (*Member, error) {
	if store == nil || h == nil {
		return nil, errors.New("fleet: nil store or host")
	}
	if cfg.Heartbeat < 0 {
		return nil, fmt.Errorf("fleet: negative heartbeat %v", cfg.Heartbeat)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.ID == "" {
		cfg.ID = newID()
	}
	if err := statestore.CheckID("host ID", cfg.ID); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Member{cfg: cfg, store: store, h: h, log: log.With(keyHost, cfg.ID),
		pending: map[string]*pendingModule{}, kick: make(chan struct{}, 1)}, nil
}

func newID() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.ReplaceAll(name, "\x00", "") + "-" + hex.EncodeToString(b[:])
}

// ID returns the host's ID.
func (m *Member) ID() string { return m.cfg.ID }

// Start registers the host and starts heartbeats. It returns the
// registration's error.
func (m *Member) Start(ctx context.Context) error {
	if err := m.register(ctx); err != nil {
		return fmt.Errorf("fleet: register host %s: %w", m.cfg.ID, err)
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.done != nil {
		return errors.New("fleet: started twice")
	}
	lctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.loop(lctx, m.done)
	return nil
}

// Stop stops the heartbeats, waits for the goroutine and removes the host
// from the store within ctx. A removal that fails is logged, not returned:
// the other hosts list the host as stale once it missed its heartbeats. It
// is idempotent and returns nil.
func (m *Member) Stop(ctx context.Context) error {
	m.stopOnce.Do(func() {
		m.life.Lock()
		cancel, done := m.cancel, m.done
		m.life.Unlock()
		if cancel == nil {
			return
		}
		cancel()
		<-done
		if err := m.store.RemoveHost(ctx, m.cfg.ID); err != nil {
			m.log.Warn("host not removed from the store; it will be listed as stale", keyErr, err)
			return
		}
		m.log.Info("host removed from the store")
	})
	return nil
}

func (m *Member) register(ctx context.Context) error {
	info := statestore.HostInfo{ID: m.cfg.ID, Version: m.cfg.Version, Heartbeat: m.cfg.Heartbeat}
	if m.cfg.Address != nil {
		info.Address = m.cfg.Address()
	}
	_, err := m.store.RegisterHost(ctx, info)
	if err == nil {
		m.log.Info("host registered", "address", info.Address, "heartbeat", m.cfg.Heartbeat)
	}
	return err
}

func (m *Member) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		m.flush(ctx)
		m.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
	}
}

// beat sends one heartbeat, registering again when the store forgot the
// host. Failures are logged when they start and when they end.
func (m *Member) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Heartbeat)
	defer cancel()
	var ps []statestore.HostPlugin
	for _, v := range m.h.Versions() {
		ps = append(ps, statestore.HostPlugin{Plugin: v.Plugin, Version: v.Version})
	}
	err := m.store.HostHeartbeat(ctx, m.cfg.ID, ps)
	if errors.Is(err, statestore.ErrNotFound) {
		if err = m.register(ctx); err == nil {
			err = m.store.HostHeartbeat(ctx, m.cfg.ID, ps)
		}
	}
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled):
	case err != nil && !m.beatFails:
		m.beatFails = true
		m.log.Warn("heartbeat failed; other hosts will list this one as stale until it succeeds", keyErr, err)
	case err == nil && m.beatFails:
		m.beatFails = false
		m.log.Info("heartbeat succeeded again")
	}
}

// Record queues the bytes of a version the host loaded for the store; the
// member's goroutine stores them before its next heartbeat, and keeps
// trying while the store fails. It never blocks; it copies wasm.
func (m *Member) Record(plugin, version string, wasm []byte, man abi.Manifest) {
	mb, err := json.Marshal(man)
	if err != nil {
		m.log.Error("encode manifest", keyPlugin, plugin, keyErr, err)
		return
	}
	m.mu.Lock()
	m.pending[plugin+"@"+version] = &pendingModule{mod: statestore.Module{Plugin: plugin, Version: version,
		Wasm: append([]byte(nil), wasm...), Manifest: mb}}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// pendingModule is a loaded version whose bytes are not stored yet.
type pendingModule struct {
	mod    statestore.Module
	warned bool // its first failure was logged; owned by the loop
}

// flush stores the queued modules; those that fail stay queued (the first
// failure of each is logged).
func (m *Member) flush(ctx context.Context) {
	m.mu.Lock()
	todo := make([]*pendingModule, 0, len(m.pending))
	for _, p := range m.pending {
		todo = append(todo, p)
	}
	m.mu.Unlock()
	for _, p := range todo {
		mod := p.mod
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := m.store.PutModule(pctx, mod)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !p.warned {
				p.warned = true
				m.log.Warn("module not stored; other hosts cannot fetch this version until it is (retried at each heartbeat)",
					keyPlugin, mod.Plugin, keyVersion, digest.Short(mod.Version), keyErr, err)
			}
			continue
		}
		m.mu.Lock()
		if m.pending[mod.Plugin+"@"+mod.Version] == p { // not queued again meanwhile
			delete(m.pending, mod.Plugin+"@"+mod.Version)
		}
		m.mu.Unlock()
		if p.warned {
			m.log.Info("module stored", keyPlugin, mod.Plugin, keyVersion, digest.Short(mod.Version))
		}
	}
}

// Pending returns how many loaded versions wait to be stored.
func (m *Member) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Hosts lists the hosts of the fleet.
func (m *Member) Hosts(ctx context.Context) ([]statestore.HostInfo, error) {
	return m.store.ListHosts(ctx)
}

// Invoker returns next with calls pinned to a version this host lacks
// served from the store (see the package documentation).
func (m *Member) Invoker(next Invoker) Invoker { return &invoker{m: m, next: next} }

type invoker struct {
	m    *Member
	next Invoker
}

func (i *invoker) Plugin(name string) (host.PluginInfo, bool) { return i.next.Plugin(name) }

func (i *invoker) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	if req.Version == "" {
		return i.next.Invoke(ctx, req)
	}
	if info, ok := i.next.Plugin(req.Plugin); ok && strings.HasPrefix(info.Version, req.Version) {
		return i.next.Invoke(ctx, req)
	}
	if err := i.m.ensure(ctx, req.Plugin, req.Version); err != nil {
		return host.InvokeResult{}, err
	}
	return i.m.h.Invoke(ctx, req)
}

// ensure makes version of plugin runnable here, fetching it from the store.
func (m *Member) ensure(ctx context.Context, plugin, version string) error {
	if m.h.HasVersion(plugin, version) {
		return nil
	}
	m.fetchMu.Lock()
	defer m.fetchMu.Unlock()
	if m.h.HasVersion(plugin, version) {
		return nil
	}
	if statestore.CheckVersion(version) != nil {
		return fmt.Errorf("%w: %s@%s is not loaded on this host, and only a full SHA-256 version can be fetched from the store", host.ErrNoPlugin, plugin, version)
	}
	mod, err := m.store.GetModule(ctx, plugin, version)
	switch {
	case errors.Is(err, statestore.ErrNotFound):
		return fmt.Errorf("%w: %s@%s is not loaded on this host and no host stored it", host.ErrNoPlugin, plugin, digest.Short(version))
	case errors.Is(err, statestore.ErrModuleHash):
		m.log.Error("module in the store refused: its bytes do not match its version", keyPlugin, plugin, keyVersion, version, keyErr, err)
		return fmt.Errorf("plugin %s@%s: module from the store refused: %w", plugin, digest.Short(version), err)
	case err != nil:
		return fmt.Errorf("plugin %s@%s: fetch from the store: %w", plugin, digest.Short(version), err)
	}
	if got := host.Version(mod.Wasm); got != version { // the store checked; so does the host
		return fmt.Errorf("plugin %s@%s: module from the store refused: %w: its SHA-256 is %s", plugin, digest.Short(version), statestore.ErrModuleHash, got)
	}
	var man abi.Manifest
	if len(mod.Manifest) > 0 {
		if err := json.Unmarshal(mod.Manifest, &man); err != nil {
			return fmt.Errorf("plugin %s@%s: manifest from the store: %w", plugin, digest.Short(version), err)
		}
	}
	start := time.Now()
	if _, err := m.h.LoadPinned(ctx, plugin, mod.Wasm, man); err != nil {
		return fmt.Errorf("plugin %s@%s from the store: %w", plugin, digest.Short(version), err)
	}
	m.log.Info("pinned version fetched from the store", keyPlugin, plugin, keyVersion, digest.Short(version), "took", time.Since(start).Round(time.Millisecond))
	select {
	case m.kick <- struct{}{}: // the next heartbeat lists it
	default:
	}
	return nil
}
