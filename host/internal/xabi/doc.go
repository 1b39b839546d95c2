// Package xabi runs plugins under the Extism ABI (the "x" is Extism): it
// compiles a module, instantiates it and calls its exports, and is the seam
// between bulkhead's host and the Wasm runtime. Everything above it sees
// Module and Instance only.
// Two implementations live here, chosen by Config.Native: the native one
// (native.go, with the Extism kernel in Go in kernel.go over the memory of
// a small Wasm module whose functions are the kernel's load and store
// accessors, kmem.go) implements the Extism ABI directly on wazero; the other runs Extism's go-sdk, the
// reference the native one is tested against. Guest HTTP is served by
// httpfn.go for both, with the client the host passes in Config.
//
// How a running guest is stopped is decided here, in Compile, and nowhere
// else: a metered module (Config.Fuel, the default) checks its call's
// context and CPU budget in the refill host function and runs without
// wazero's close-on-context-done; a module that is not metered runs with
// close-on-context-done, whether or not the plugin sets a timeout.
//
// Allowed paths are mounted here too, each instance with its own
// host/internal/jailfs file systems (closed with the instance), never with
// go-sdk's or wazero's directory mounts, which follow symbolic links out of
// the directory.
package xabi
