package memstore_test

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

// BenchmarkRuns times CreateRun and pages of runs at 10,000, 100,000 and
// 1,000,000 stored runs (storetest.BenchRuns).
func BenchmarkRuns(b *testing.B) {
	storetest.BenchRuns(b, func(*testing.B) statestore.Store { return memstore.New() })
}
