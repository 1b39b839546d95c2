package host

import "net/netip"

// RefuseGuestAddresses makes h's guest requests refuse the addresses in
// refuse too (tests refuse loopback to exercise the dial check without
// leaving it). Call it before the first guest request.
func RefuseGuestAddresses(h *Host, refuse ...netip.Prefix) {
	h.guestNet.mu.Lock()
	defer h.guestNet.mu.Unlock()
	h.guestNet.refuse = refuse
}

// PoolPeak returns the most instances of plugin name's current version in
// use at once, or 0 when it is not loaded.
func PoolPeak(h *Host, name string) int {
	for _, g := range h.generations() {
		if g.plugin == name {
			return g.pool.Stats().Peak
		}
	}
	return 0
}
