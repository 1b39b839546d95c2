package badgerstore_test

import (
	"context"
	"fmt"
	"sync"

	"bytes"
	"github.com/dgraph-io/badger/v4"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestMain(m *testing.M) {
	if crashChild() || fullChild() || closeChild() || queueCrashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, dir string, opts ...badgerstore.Option) *badgerstore.Store {
	t.Helper()
	s, err := badgerstore.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) statestore.Store { return open(t, t.TempDir()) })
}

func TestStore_QueueConformance(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T) (storetest.QueueStore, storetest.QueueStore) {
		return open(t, t.TempDir()), nil
	})
}

func TestStore_WithLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := open(t, t.TempDir(), badgerstore.WithLogger(l))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "component=badger") {
		t.Fatalf("Badger's messages did not reach the logger at debug level:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "level=INFO") {
		t.Fatalf("Badger's info messages logged above debug:\n%s", buf.String())
	}
}

// TestStore_LargeGroup makes one group hold more than one Badger
// transaction can take, so the committer splits it.
func TestStore_LargeGroup(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	const writers = 24
	data := bytes.Repeat([]byte("x"), 900<<10) // under the value threshold: counted in the transaction
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("n%d", w)
			if _, err := s.SaveCheckpoint(ctx, "r", node, data); err != nil {
				t.Error(err)
			}
			if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r", Node: node, Output: data}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	res, err := s.NodeResults(ctx, "r")
	if err != nil || len(res) != writers {
		t.Fatalf("NodeResults = %d, %v", len(res), err)
	}
	cps, err := s.ListCheckpoints(ctx, "r", "")
	if err != nil || len(cps) != writers {
		t.Fatalf("ListCheckpoints = %d, %v", len(cps), err)
	}
	for _, c := range cps {
		if !bytes.Equal(c.Data, data) {
			t.Fatalf("checkpoint of %s holds %d bytes", c.Node, len(c.Data))
		}
	}
}

func TestOpen_OtherLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("mformat"), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, dir, badgerstore.ErrCorrupt, "layout version")
}
