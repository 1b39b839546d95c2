package badgerstore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

func sampleRun(id string) statestore.Run {
	r := statestore.Run{ID: id, Workflow: "chain", Input: []byte(`{"a":1}`), InputHash: "ab12",
		Status: statestore.StatusRunning, CreatedAt: time.Unix(1700000000, 5).UTC(), UpdatedAt: time.Unix(1700000001, 0).UTC(),
		Versions: map[string]string{}, Attrs: map[string]string{"by": "test"},
		Progress: map[string]statestore.Progress{}}
	for i := range 10 {
		r.Versions[fmt.Sprintf("s%d", i)] = "0123456789abcdef0123456789abcdef"
	}
	return r
}

// TestDecodeRunCached: a cached decode equals a fresh one, is a copy the
// caller may change, and is never used for other bytes.
func TestDecodeRunCached(t *testing.T) {
	r := sampleRun("cache-1")
	v, _ := json.Marshal(r)
	first, err := decodeRunCached(r.ID, v)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := decodeRun(v)
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first decode %+v, want %+v", first, want)
	}
	first.Versions["s0"] = "changed" // the caller's copy
	first.Attrs["by"] = "changed"
	again, _ := decodeRunCached(r.ID, append([]byte(nil), v...))
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("cached decode %+v, want %+v", again, want)
	}
	r.Status = statestore.StatusSucceeded
	v2, _ := json.Marshal(r)
	changed, _ := decodeRunCached(r.ID, v2)
	if changed.Status != statestore.StatusSucceeded {
		t.Fatalf("decode of changed bytes has status %v", changed.Status)
	}
	if _, err := decodeRunCached(r.ID, []byte("{")); err == nil {
		t.Fatal("bad bytes decoded")
	}
}

func BenchmarkDecodeRun(b *testing.B) {
	r := sampleRun("bench-1")
	v, _ := json.Marshal(r)
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeRun(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeRunCached(r.ID, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
