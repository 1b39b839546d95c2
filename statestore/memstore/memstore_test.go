package memstore_test

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) statestore.Store { return memstore.New() })
}

func TestStore_QueueConformance(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T) (storetest.QueueStore, storetest.QueueStore) { return memstore.New(), nil })
}
