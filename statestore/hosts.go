package statestore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MissedHeartbeats is how many heartbeats a host may miss before it is
// listed as stale: a host is live while its last heartbeat is younger
// than MissedHeartbeats times the interval it registered with.
const MissedHeartbeats = 3

// ForgetHosts is how long a stale host stays listed: RegisterHost removes
// hosts not seen for longer.
const ForgetHosts = 24 * time.Hour

// HostPlugin is one plugin version a host serves.
type HostPlugin struct {
	Plugin  string `json:"plugin"`
	Version string `json:"version"`
}

// HostInfo is one bulkhead host sharing the store.
type HostInfo struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	// Version is the host's bulkhead version.
	Version string `json:"version,omitempty"`
	// Heartbeat is the interval at which the host promised to beat.
	Heartbeat time.Duration `json:"heartbeat"`
	// StartedAt and LastSeen are set by the store, on its own clock (the
	// database's, for a shared store), so hosts with skewed clocks agree
	// on who is live.
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Age is how long before the listing LastSeen was, on the store's
	// clock. ListHosts sets it.
	Age time.Duration `json:"age"`
	// Plugins are the plugin versions the host serves, as of its last
	// heartbeat, ordered by plugin then version.
	Plugins []HostPlugin `json:"plugins,omitempty"`
}

// Live reports whether h beat within MissedHeartbeats of its interval.
func (h HostInfo) Live() bool { return h.Age <= MissedHeartbeats*h.Heartbeat }

// Hosts is the membership of the hosts that share a store. A store opened
// by one process at a time (badgerstore, memstore) lists only the host that
// registered last.
type Hosts interface {
	// RegisterHost records h (by ID, replacing an earlier record of the same
	// ID) with StartedAt and LastSeen set to now on the store's clock, and
	// returns it as stored. It also forgets hosts not seen for ForgetHosts.
	// Errors: ErrInvalid (empty ID or Heartbeat <= 0), ErrClosed,
	// ErrUnavailable.
	RegisterHost(ctx context.Context, h HostInfo) (HostInfo, error)
	// HostHeartbeat sets the host's LastSeen to now on the store's clock and
	// its plugins to plugins. Errors: ErrNotFound when the host is not
	// registered (it was removed: register again), ErrInvalid, ErrClosed,
	// ErrUnavailable.
	HostHeartbeat(ctx context.Context, id string, plugins []HostPlugin) error
	// ListHosts returns every registered host, live or stale, ordered by ID,
	// with Age set. Errors: ErrClosed, ErrUnavailable.
	ListHosts(ctx context.Context) ([]HostInfo, error)
	// RemoveHost forgets a host (a clean stop); removing an unknown host is
	// not an error. Errors: ErrInvalid, ErrClosed, ErrUnavailable.
	RemoveHost(ctx context.Context, id string) error
}

// CheckHost returns an ErrInvalid error when h cannot be registered: an
// invalid ID, a non-positive Heartbeat, or an address or version that is
// not NUL-free UTF-8.
func CheckHost(h HostInfo) error {
	if err := CheckID("host ID", h.ID); err != nil {
		return err
	}
	if h.Heartbeat <= 0 {
		return fmt.Errorf("%w: host %s: heartbeat interval %v is not positive", ErrInvalid, h.ID, h.Heartbeat)
	}
	for what, s := range map[string]string{"address": h.Address, "version": h.Version} {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%w: host %s: %s %q is not NUL-free UTF-8", ErrInvalid, h.ID, what, s)
		}
	}
	return nil
}

// CheckHostPlugins returns an ErrInvalid error unless every entry names a
// plugin and a version.
func CheckHostPlugins(ps []HostPlugin) error {
	for _, p := range ps {
		if err := CheckID("plugin", p.Plugin); err != nil {
			return err
		}
		if !utf8.ValidString(p.Plugin) || p.Version == "" || !utf8.ValidString(p.Version) || strings.IndexByte(p.Version, 0) >= 0 {
			return fmt.Errorf("%w: host plugin %q version %q", ErrInvalid, p.Plugin, p.Version)
		}
	}
	return nil
}

// SortHostPlugins returns a copy of ps ordered by plugin then version,
// without duplicates.
func SortHostPlugins(ps []HostPlugin) []HostPlugin {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b HostPlugin) int {
		if c := strings.Compare(a.Plugin, b.Plugin); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return slices.Compact(ps)
}
