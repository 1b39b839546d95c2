package badgerstore

import (
	"bytes"
	"sync"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// runCacheMax bounds the decoded runs kept; past it the cache starts over.
const runCacheMax = 4096

// runCache keeps the last decoded form of run records by run ID, beside
// the bytes it was decoded from: a run is read far more often than it
// changes (every node of a run and every Wait reads it), and decoding its
// JSON was the largest CPU cost of a read. An entry is used only when the
// stored bytes are exactly the ones it was decoded from, so it can never
// be stale, and it is handed out as a deep copy.
var runCache struct {
	mu sync.Mutex
	m  map[string]cachedRun
}

type cachedRun struct {
	raw []byte
	run statestore.Run
}

// decodeRunCached is decodeRun through runCache.
func decodeRunCached(id string, v []byte) (statestore.Run, error) {
	runCache.mu.Lock()
	c, ok := runCache.m[id]
	runCache.mu.Unlock()
	if ok && bytes.Equal(c.raw, v) {
		return c.run.Clone(), nil
	}
	r, err := decodeRun(v)
	if err != nil {
		return r, err
	}
	runCache.mu.Lock()
	if runCache.m == nil || len(runCache.m) >= runCacheMax {
		runCache.m = make(map[string]cachedRun, runCacheMax)
	}
	// v is the caller's copy of the value (getValue copies it); the
	// cache keeps its own.
	runCache.m[id] = cachedRun{raw: bytes.Clone(v), run: r.Clone()}
	runCache.mu.Unlock()
	return r, nil
}
