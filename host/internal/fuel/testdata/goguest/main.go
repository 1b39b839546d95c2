// Command goguest is a Go-built Wasm guest for the fuel tests and
// benchmarks: its run export hashes n KiB of generated data with SHA-256.
//
// Build (from host/internal/fuel/testdata):
//
//	cd goguest && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o ../goguest.wasm .
package main

import (
	"crypto/sha256"
	"encoding/binary"
)

func main() {}

// run hashes kib KiB of a deterministic byte pattern and returns the first
// eight bytes of the digest.
//
//go:wasmexport run
func run(kib int32) int64 {
	buf := make([]byte, int(kib)*1024)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	sum := sha256.Sum256(buf)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}
