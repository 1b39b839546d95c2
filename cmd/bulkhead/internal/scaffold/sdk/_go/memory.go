//go:build wasip1

package bulkhead

import "encoding/binary"

// readBlock copies the Extism memory block at handle h into Go memory,
// eight bytes per host call.
func readBlock(h uint64) []byte {
	if h == 0 {
		return nil
	}
	n := extismLength(h)
	buf := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], extismLoadU64(h+i))
	}
	for ; i < n; i++ {
		buf[i] = byte(extismLoadU8(h + i))
	}
	return buf
}

// writeBlock allocates an Extism memory block holding b and returns its handle.
func writeBlock(b []byte) uint64 {
	n := uint64(len(b))
	h := extismAlloc(n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		extismStoreU64(h+i, binary.LittleEndian.Uint64(b[i:]))
	}
	for ; i < n; i++ {
		extismStoreU8(h+i, uint32(b[i]))
	}
	return h
}

func writeString(s string) uint64 { return writeBlock([]byte(s)) }

func readInput() []byte {
	n := extismInputLength()
	buf := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], extismInputLoadU64(i))
	}
	for ; i < n; i++ {
		buf[i] = byte(extismInputLoadU8(i))
	}
	return buf
}
