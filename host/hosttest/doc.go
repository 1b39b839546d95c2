// Package hosttest helps tests that run real plugins: a Host whose cleanup
// is registered with t.Cleanup, and one on-disk compilation cache shared by
// every test process, so each fixture is compiled once per machine rather
// than once per test. NewJail and JailCases are the sandbox-escape suite
// that the host, the CLI and the service each run.
package hosttest
