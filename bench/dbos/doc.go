// Package dbosbench compares bulkhead's workflow engine on PostgreSQL with
// DBOS Transact Go on the same PostgreSQL: a 10-step workflow of no-op
// steps, completions per second at 1, 16 and 256 workflows in flight, and
// the latency of one 10-step workflow at a time. It is its own module so
// that bulkhead's go.mod does not carry DBOS. Run it with `make bench-dbos`.
package dbosbench
