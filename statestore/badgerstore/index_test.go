package badgerstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// rawUpdate runs fn on the closed store in dir through Badger itself.
func rawUpdate(t testing.TB, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// statusKeys returns the status index entries of the closed store in dir.
func statusKeys(t testing.TB, dir string) [][]byte {
	t.Helper()
	var keys [][]byte
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'s'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys
}

// indexedStore writes n runs (every third failed, every third running)
// into a closed store and returns its directory.
func indexedStore(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := badgerstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		st := []statestore.RunStatus{statestore.StatusSucceeded, statestore.StatusFailed, statestore.StatusRunning}[i%3]
		if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%04d", i), Workflow: "wf"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateRun(ctx, fmt.Sprintf("run-%04d", i), func(r *statestore.Run) error { r.Status = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// toLayout1 makes dir look like a store written before the status index:
// no s keys, layout marker 1; keep (when not nil) is left in place, as an
// interrupted build leaves it.
func toLayout1(t testing.TB, dir string, keep func(k []byte) bool) {
	t.Helper()
	keys := statusKeys(t, dir)
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		for _, k := range keys {
			if keep == nil || !keep(k) {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return txn.Set([]byte("mformat"), []byte("1"))
	})
}

func failedIDs(t *testing.T, s statestore.Store) []string {
	t.Helper()
	var ids []string
	f := statestore.RunFilter{Status: statestore.StatusFailed, Limit: 7}
	for {
		runs, next, err := s.ListRuns(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Status != statestore.StatusFailed {
				t.Fatalf("ListRuns(failed) returned %s in state %s", r.ID, r.Status)
			}
			ids = append(ids, r.ID)
		}
		if next == "" {
			return ids
		}
		f.After = next
	}
}

func wantFailed(n int) []string {
	var ids []string
	for i := range n {
		if i%3 == 1 {
			ids = append(ids, fmt.Sprintf("run-%04d", i))
		}
	}
	return ids
}

func TestOpen_BuildsStatusIndex(t *testing.T) {
	const n = 300
	dir := indexedStore(t, n)
	want := statusKeys(t, dir)
	if len(want) != n {
		t.Fatalf("%d status index entries for %d runs", len(want), n)
	}
	toLayout1(t, dir, nil)
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Fatalf("Check of a layout-1 store = %+v, %v; want OK", rep, err)
	}

	var logs bytes.Buffer
	s := open(t, dir, badgerstore.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if got := failedIDs(t, s); !slices.Equal(got, wantFailed(n)) {
		t.Fatalf("failed runs after the build = %v", got)
	}
	if !strings.Contains(logs.String(), "status index built") || !strings.Contains(logs.String(), fmt.Sprintf("runs=%d", n)) {
		t.Fatalf("the build was not logged with its count:\n%s", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := statusKeys(t, dir); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("rebuilt index differs: %d entries, want %d", len(got), len(want))
	}

	// Built once: the next open logs nothing.
	logs.Reset()
	s = open(t, dir, badgerstore.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "status index built") {
		t.Fatalf("index built twice:\n%s", logs.String())
	}
}

// TestOpen_InterruptedIndexBuild opens a layout-1 store holding part of an
// index and a stale entry, as a build killed before its marker leaves it.
func TestOpen_InterruptedIndexBuild(t *testing.T) {
	const n = 120
	dir := indexedStore(t, n)
	want := statusKeys(t, dir)
	i := 0
	toLayout1(t, dir, func([]byte) bool { i++; return i%2 == 0 })
	stale := append([]byte("scancelled\x00"), want[0][len(want[0])-len("run-0000")-8:]...)
	rawUpdate(t, dir, func(txn *badger.Txn) error { return txn.Set(stale, nil) })

	s := open(t, dir)
	if got := failedIDs(t, s); !slices.Equal(got, wantFailed(n)) {
		t.Fatalf("failed runs after the build = %v", got)
	}
	runs, _, err := s.ListRuns(context.Background(), statestore.RunFilter{Status: statestore.StatusCancelled})
	if err != nil || len(runs) != 0 {
		t.Fatalf("ListRuns(cancelled) = %d runs, %v; want none", len(runs), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := statusKeys(t, dir); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("rebuilt index differs: %d entries, want %d", len(got), len(want))
	}
}

func TestCheck_IndexDisagrees(t *testing.T) {
	dir := indexedStore(t, 30)
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Fatalf("Check of a sound store = %+v, %v", rep, err)
	}
	keys := statusKeys(t, dir)
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		if err := txn.Delete(keys[0]); err != nil {
			return err
		}
		// run-0004 failed; a second entry says it succeeded.
		return txn.Set(bytes.Replace(keys[1], []byte("failed"), []byte("succeeded"), 1), nil)
	})
	rep, err := badgerstore.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rep.Problems, "\n")
	if rep.OK() || !strings.Contains(got, `run "run-0001" has no status index entry`) ||
		!strings.Contains(got, `status index entry (succeeded) of run "run-0004": the run is failed`) {
		t.Fatalf("Check = %+v; want both disagreements", rep)
	}

	// Repair marks the index for a rebuild, and the next open rebuilds it.
	rep, err = badgerstore.Repair(dir)
	if err != nil || len(rep.Repaired) == 0 {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	s := open(t, dir)
	if got := failedIDs(t, s); !slices.Equal(got, wantFailed(30)) {
		t.Fatalf("failed runs after the rebuild = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Fatalf("Check after the rebuild = %+v, %v", rep, err)
	}
}
