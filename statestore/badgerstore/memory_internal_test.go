package badgerstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	badgeropts "github.com/dgraph-io/badger/v4/options"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// A store written before tables were left uncompressed holds Snappy
// tables. Badger records each table's compression in the MANIFEST and
// reads it with that, so such a store opens, passes the table checks and
// reads back, with Snappy and uncompressed tables side by side.
func TestOpen_SnappyTablesStillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(c badgeropts.CompressionType, from, to int) {
		t.Helper()
		oldC, oldCache := tableCompression, blockCacheSize
		tableCompression, blockCacheSize = c, 0
		if c != badgeropts.None {
			blockCacheSize = 32 << 20 // Badger requires one with compression
		}
		defer func() { tableCompression, blockCacheSize = oldC, oldCache }()
		s, err := Open(dir, WithGCInterval(-1))
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, _, err := s.SubmitRun(ctx, statestore.Run{ID: fmt.Sprintf("r%05d", i), Workflow: "wf",
				Input: []byte(fmt.Sprintf(`{"n":%d,"pad":"%0200d"}`, i, i)), Status: statestore.StatusRunning},
				[]statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		// Close flushes the memtable into a table of compression c.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(badgeropts.Snappy, 0, 500)
	write(badgeropts.None, 500, 1000)

	tables, known := manifestTables(dir)
	seen := map[badgeropts.CompressionType]int{}
	for _, c := range tables {
		seen[c]++
	}
	if !known || seen[badgeropts.Snappy] == 0 || seen[badgeropts.None] == 0 {
		t.Fatalf("MANIFEST tables by compression: %v (read: %v), want both Snappy and none", seen, known)
	}
	if err := checkFiles(dir); err != nil {
		t.Fatalf("checkFiles on a store of mixed tables: %v", err)
	}
	s, err := Open(dir, WithGCInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		r, err := s.GetRun(ctx, fmt.Sprintf("r%05d", i))
		if err != nil || string(r.Input) != fmt.Sprintf(`{"n":%d,"pad":"%0200d"}`, i, i) {
			t.Fatalf("run %d: %q, %v", i, r.Input, err)
		}
	}
}

// The options Open gives Badger bound what Badger holds in the heap for
// writing and compacting, whatever the store's size: no compression (whose
// buffers and decompressed blocks no option bounds), tables of one size,
// and memtables, table buffers and caches within the budget.
// TestBacklog_Million (host/workflow, a soak) measures the whole heap
// draining a backlog of a million runs.
func TestBadgerOptions_HeapBounded(t *testing.T) {
	bo := badgerOptions(t.TempDir(), defaultOptions())
	bound := badgerHeapBound(bo)
	t.Logf("Badger's heap bound: %.1f MiB (memtables of %d MiB, %d compactors, tables of %d MiB, block cache %d MiB)",
		float64(bound)/(1<<20), bo.MemTableSize>>20, bo.NumCompactors, bo.BaseTableSize>>20, bo.BlockCacheSize>>20)
	if bound < 0 {
		t.Fatalf("Badger's heap is unbounded with compression %v and table size multiplier %d", bo.Compression, bo.TableSizeMultiplier)
	}
	if bound > badgerHeapBudget {
		t.Fatalf("Badger may hold %d MiB, over its %d MiB budget", bound>>20, badgerHeapBudget>>20)
	}
	// Badger's defaults with the block cache the store used to have: a
	// check that the arithmetic tells them apart.
	old := badger.DefaultOptions("").WithMemTableSize(memTableSize).WithNumCompactors(2).WithBlockCacheSize(32 << 20)
	old.TableSizeMultiplier = 1
	if b := badgerHeapBound(old); b >= 0 && b <= badgerHeapBudget {
		t.Fatalf("Snappy tables with a 32 MiB block cache: bound %d, want unbounded", b)
	}
	old = old.WithCompression(badgeropts.None).WithBlockCacheSize(0)
	if b := badgerHeapBound(old); b <= badgerHeapBudget {
		t.Fatalf("uncompressed tables of 2 MiB: bound %d MiB, want over the budget", b>>20)
	}
}

// The memtable size sets the largest transaction Badger takes (15% of
// it). The largest value the tree holds is just under valueThreshold (a
// larger one goes to the value log), so one write of such a value must fit
// a transaction, and the group commit must split groups of them: runs
// whose records are just under the threshold, submitted at once, are all
// stored.
func TestCommit_LargestValuesFitATransaction(t *testing.T) {
	// Beside its largest value a write holds keys and small values: half
	// a MiB is generous (memtables of 8 MiB would leave 0.2 MiB).
	const beside = 512 << 10
	if maxTxn := int64(15 * memTableSize / 100); maxTxn < valueThreshold+beside {
		t.Fatalf("Badger's largest transaction (%d bytes at memtables of %d MiB) leaves less than %d bytes beside a value of %d bytes",
			maxTxn, memTableSize>>20, beside, valueThreshold)
	}
	ctx := context.Background()
	s, err := Open(t.TempDir(), WithGCInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A run record holds its input in base64: 4/3 of it, plus the rest of
	// the record.
	input := make([]byte, (valueThreshold-4096)*3/4)
	for i := range input {
		input[i] = byte('a' + i%26)
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, _, err := s.SubmitRun(ctx, statestore.Run{ID: fmt.Sprintf("big%d", i), Workflow: "wf", Input: input,
				Status: statestore.StatusRunning}, []statestore.ReadyNode{{Node: "a", Block: 1}})
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		id := fmt.Sprintf("big%d", i)
		var size int
		if err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key(pRun, id))
			if err == nil {
				size = int(item.ValueSize())
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if size >= valueThreshold || size < valueThreshold-8192 {
			t.Fatalf("run %s record is %d bytes, want just under %d", id, size, valueThreshold)
		}
		if r, err := s.GetRun(ctx, id); err != nil || len(r.Input) != len(input) {
			t.Fatalf("run %s: %d input bytes, %v", id, len(r.Input), err)
		}
	}
}
