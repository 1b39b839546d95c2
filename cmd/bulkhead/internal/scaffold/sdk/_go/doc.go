// Package bulkhead is the Go guest SDK of bulkhead: it turns a Go main
// package into a bulkhead node (an Extism-ABI module) built with the standard
// toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o node.wasm .
//
// A node exports one function per entry point with //go:wasmexport and hands
// its work to Handle:
//
//	//go:wasmexport run
//	func run() int32 {
//		return bulkhead.Handle(func(in []byte) ([]byte, error) {
//			return bytes.ToUpper(in), nil
//		})
//	}
//
//	func main() {}
//
// An error returned by the handler is a retryable failure unless it wraps
// ErrPermanent (see Permanent), in which case the host never retries it.
// A panic traps the instance; the host discards that instance and retries on
// a fresh one.
//
// The module needs nothing but the standard library: its ABI constants
// (abi.go) are generated from the host's abi package by `go generate ./abi`.
// `bulkhead new --lang go NAME` writes a project with a copy of it in
// bulkhead/, so a node builds offline.
//
// Data crosses the ABI eight bytes per host call. Config, vars, logging,
// invocation info, retry hints, checkpoints, plugin state and progress map
// one to one onto the functions documented in the abi package.
package bulkhead
