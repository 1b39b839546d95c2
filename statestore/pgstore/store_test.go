package pgstore_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }

func open(t testing.TB, url string, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) statestore.Store { return open(t, pgtest.URL(t)) })
}

func TestStore_ConformanceNoGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	storetest.Run(t, func(t *testing.T) statestore.Store { return open(t, pgtest.URL(t), pgstore.WithMaxBatch(1)) })
}
