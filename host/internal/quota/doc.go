// Package quota is the host's accounting of what guests may consume: the
// state a plugin holds against its quota (Account), and the rate of log
// lines it writes (Limiter).
//
// # Account
//
// An Account counts the keys and bytes (keys plus values) of one plugin's
// durable state. It starts from the store's count (a load function, called
// on first use) and counts on from every write the host makes:
//
//	unlock := a.Lock(key)
//	defer unlock()
//	old := ...the key's current value, read under the lock...
//	d := quota.Delta(key, old, oldFound, value)
//	if err := a.Reserve(lim, d, load); err != nil { ... refuse ... }
//	err := write()
//	a.Done(d, err == nil)
//
// Reserve counts a write's growth before the write reaches the store and
// refuses one that would take the count past a limit; Done counts its
// shrinking once the store took it. Writes of one key are serialized by
// Lock. So, while every write of the plugin's state goes through one
// Account, the store never holds more than the limits, also under
// concurrent writers: two writes racing for the last room cannot both be
// admitted. A write that shrinks the state is always admitted, so a plugin
// over its quota (one that was lowered) can delete its way back. After a
// failed write, whose effect on the store is unknown, the count is loaded
// again before the next reservation, once no write is in flight.
//
// # Limiter
//
// A Limiter is a token bucket over lines and bytes: one second's worth is
// the burst. Lines it refuses are counted; Summary hands out the count at
// most once a second, for one line saying what was dropped.
//
// # Concurrency
//
// Both types are safe for concurrent use. An Account's key locks are taken
// before its counter's mutex, never after.
package quota
