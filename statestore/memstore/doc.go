// Package memstore is an in-memory statestore.Store for tests and for
// embedding bulkhead as a library without persistence.
//
// It keeps everything in maps under one mutex and passes the
// statestore/storetest conformance suite. Beside the maps it keeps sorted
// indexes, changed under the same lock as the records: every run and the
// runs of each status in ListRuns order, and dead-letter IDs, all and per
// run. A page is a binary search and a copy of its entries, O(log n +
// page); UnfinishedRuns reads the pending and running indexes only. A run
// created with the newest creation time appends to them; a status change
// moves the entries after its position in its two status indexes. Nothing survives the process:
// "durable" in the statestore contract means "visible to every later call"
// here. It applies no retention (finished runs stay until the store is
// dropped). New allocates only; it starts no goroutines, so there is nothing
// to stop besides Close, which makes every later call return
// statestore.ErrClosed.
//
// UpdateRun calls fn without holding the lock and applies the result only if
// the run did not change meanwhile (otherwise it calls fn again), so fn may
// itself call the store.
package memstore
