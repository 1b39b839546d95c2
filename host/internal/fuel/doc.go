// Package fuel meters the CPU a Wasm guest uses by rewriting its module at
// load time. Documentation is completed below.
package fuel
