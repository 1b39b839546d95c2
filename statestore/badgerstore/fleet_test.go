package badgerstore_test

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestStore_FleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) statestore.Store { return open(t, t.TempDir()) }, false)
}
