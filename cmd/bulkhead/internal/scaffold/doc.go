// Package scaffold writes a ready-to-build bulkhead node project: what
// `bulkhead new --lang LANG NAME` produces. Each project holds one source
// file whose `run` export greets its input (an empty input is a permanent
// failure), a Makefile whose default target builds NAME.wasm with the
// language's usual toolchain, a three-line README and a .gitignore.
//
// # SDKs
//
// Rust, C and AssemblyScript projects carry a copy of their SDK in
// bulkhead/, so they build with no package registry: the Rust SDK needs the
// standard library only, the C SDK is two headers, and the AssemblyScript
// SDK is two files beside the npm assemblyscript compiler. The copies are
// embedded from sdk-guest/ by `go generate`; a test fails when they drift.
// Go projects import the Go SDK module instead; until that module is
// published, Options.GoSDKDir points go.mod at a bulkhead checkout.
//
// # Errors and concurrency
//
// Write refuses a bad name, an unknown language and a directory that is
// not empty (ErrExists); it never overwrites a file. It holds no state and
// is safe for concurrent use on distinct directories.
package scaffold
