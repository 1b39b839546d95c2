// Package dbosbench compares bulkhead's workflow engine on PostgreSQL with
// DBOS Transact Go on the same PostgreSQL: a 10-step workflow of no-op
// steps, completions per second at 1, 16 and 256 workflows in flight (for
// bulkhead with one host, then with two and three hosts sharing a
// database, each with its own store, pool and engine in this process), and
// the latency of one 10-step workflow at a time. Beside each rate it
// reports what a step cost: transactions and WAL flushes of the database,
// and CPU time of this process and of the database server's processes.
// On a shared machine the CPU time per step says more than the rate, and
// BenchmarkAlternating_Completions measures both systems in alternating
// rounds a few seconds apart, so that the machine's drift weighs on both
// alike, and reports the median ratio of the rounds. It is
// its own module so that bulkhead's go.mod does not carry DBOS. Run it
// with `make bench-dbos`.
package dbosbench
