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
