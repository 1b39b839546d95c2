// Package scaffold writes a ready-to-build bulkhead node project: what
// `bulkhead new --lang LANG NAME` produces. Each project holds one source
// file whose `run` export greets its input (an empty input is a permanent
// failure), a Makefile whose default target builds NAME.wasm with the
// language's usual toolchain, a three-line README and a .gitignore.
//
// # SDKs
//
// Every project carries a copy of its SDK in bulkhead/, so it builds
// offline, with no package registry: the Go SDK is a module with no
// dependencies that go.mod replaces with ./bulkhead, the Rust SDK needs the
// standard library only, the C SDK is two headers, and the AssemblyScript
// SDK is two files beside the npm assemblyscript compiler. The copies are
// embedded from sdk-guest/ by `go generate`; a test fails when they drift.
// Options.GoSDKDir points a Go project at a bulkhead checkout's SDK instead.
//
// # Errors and concurrency
//
// Write refuses a bad name, an unknown language and a directory that is
// not empty (ErrExists); it never overwrites a file. It holds no state and
// is safe for concurrent use on distinct directories.
package scaffold
