package quota

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// Usage is a number of keys and bytes, or a change of them.
type Usage struct {
	Keys  int64
	Bytes int64
}

// Limits is a quota; a limit of 0 or less is no limit.
type Limits struct {
	Keys  int64
	Bytes int64
}

// Error is a write refused because it would pass a quota.
type Error struct {
	Limit string // "state_keys" or "state_bytes"
	Used  int64  // the count before the write
	Add   int64  // what the write adds
	Max   int64
}

func (e *Error) Error() string {
	if e.Limit == "state_keys" {
		return fmt.Sprintf("quota used up: the state holds %d keys, state_keys is %d", e.Used, e.Max)
	}
	return fmt.Sprintf("quota used up: the state holds %d bytes, %d more would pass state_bytes of %d", e.Used, e.Add, e.Max)
}

// Delta is the change of usage when key's value becomes value: old is the
// value it replaces, found whether there was one.
func Delta(key string, old []byte, found bool, value []byte) Usage {
	d := Usage{Bytes: int64(len(key) + len(value))}
	if found {
		d.Bytes -= int64(len(key) + len(old))
	} else {
		d.Keys = 1
	}
	return d
}

// DeleteDelta is the change of usage when key, holding old, is deleted.
func DeleteDelta(key string, old []byte, found bool) Usage {
	if !found {
		return Usage{}
	}
	return Usage{Keys: -1, Bytes: -int64(len(key) + len(old))}
}

const stripes = 64

var seed = maphash.MakeSeed()

// Account counts the state of one plugin. The zero value is ready to use.
type Account struct {
	keys [stripes]sync.Mutex

	mu       sync.Mutex
	used     Usage
	loaded   bool // used holds the store's count
	stale    bool // a write failed: load again once none is in flight
	inflight int
}

// Lock serializes the writes of key (and of the keys sharing its stripe).
// The caller reads the key's current value under it.
func (a *Account) Lock(key string) (unlock func()) {
	m := &a.keys[maphash.String(seed, key)%stripes]
	m.Lock()
	return m.Unlock
}

// Reserve admits a write that changes the usage by d, counting its growth
// at once, or returns an *Error. load returns the store's count; it is
// called on first use and after a failed write. Every admitted write must
// be followed by Done.
func (a *Account) Reserve(lim Limits, d Usage, load func() (Usage, error)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.loaded || a.stale && a.inflight == 0 {
		u, err := load()
		if err != nil {
			return fmt.Errorf("state usage: %w", err)
		}
		a.used, a.loaded, a.stale = u, true, false
	}
	if d.Keys > 0 && lim.Keys > 0 && a.used.Keys+d.Keys > lim.Keys {
		return &Error{Limit: "state_keys", Used: a.used.Keys, Add: d.Keys, Max: lim.Keys}
	}
	if d.Bytes > 0 && lim.Bytes > 0 && a.used.Bytes+d.Bytes > lim.Bytes {
		return &Error{Limit: "state_bytes", Used: a.used.Bytes, Add: d.Bytes, Max: lim.Bytes}
	}
	a.used.Keys += max(d.Keys, 0)
	a.used.Bytes += max(d.Bytes, 0)
	a.inflight++
	return nil
}

// Done settles a write Reserve admitted: ok says the store took it.
func (a *Account) Done(d Usage, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	if ok {
		a.used.Keys += min(d.Keys, 0)
		a.used.Bytes += min(d.Bytes, 0)
		return
	}
	a.used.Keys -= max(d.Keys, 0)
	a.used.Bytes -= max(d.Bytes, 0)
	a.stale = true
}

// Used returns the current count (growth of writes in flight included).
func (a *Account) Used() Usage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}
