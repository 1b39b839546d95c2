// Command gen writes the ABI constants and import declarations of the Rust,
// C and AssemblyScript guest SDKs from package abi, so that no SDK can drift
// from the contract. `go generate ./abi` runs it from the abi directory; run
// by hand, pass the repository root with -root.
//
// The Extism kernel functions carry only names in package abi; their
// signatures are fixed by Extism and listed here. gen refuses to run when the
// two lists disagree.
package main
