//go:build wasip1

package bulkhead

import (
	"runtime"
	"unsafe"
)

// Payloads cross between the Extism memory and Go memory in one host call
// each (bulkhead:host/v1 input_read, block_read and block_write), not eight
// bytes per call.

// addr is the guest address of b's first byte; b must not be empty.
func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// readBlock copies the Extism memory block at handle h into Go memory.
func readBlock(h uint64) []byte {
	if h == 0 {
		return nil
	}
	buf := make([]byte, extismLength(h))
	if len(buf) > 0 {
		bulkBlockRead(h, addr(buf))
	}
	return buf
}

// writeBlock allocates an Extism memory block holding b and returns its
// handle (0 for an empty b, or when the memory cap leaves no room).
func writeBlock(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	h := bulkBlockWrite(addr(b), uint64(len(b)))
	runtime.KeepAlive(b)
	return h
}

func writeString(s string) uint64 { return writeBlock([]byte(s)) }

func readInput() []byte {
	buf := make([]byte, extismInputLength())
	if len(buf) > 0 {
		bulkInputRead(addr(buf))
	}
	return buf
}
