package pgstore

import "sync"

// maxCachedRuns bounds the runs a store remembers for UpdateRun.
const maxCachedRuns = 4096

// runCache remembers the stored form of unfinished runs this store wrote
// or read, with their row version, so that UpdateRun (a run's end, its
// progress) writes without reading the run first: one round trip instead
// of two. The write is conditional on the version and the creation time
// the cache holds, so a stale entry (another host updated the run, or it
// was deleted and created again) changes nothing: the UPDATE matches no
// row, and UpdateRun reads the run and tries again.
type runCache struct {
	mu sync.Mutex
	m  map[string]cachedRun
}

type cachedRun struct {
	body []byte // the run as stored, JSON
	rev  int64
}

func (c *runCache) get(id string) (cachedRun, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	return e, ok
}

// put remembers body at rev for id, unless it holds a later rev (a read
// that returns after a write).
func (c *runCache) put(id string, body []byte, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cachedRun)
	}
	old, ok := c.m[id]
	if ok && old.rev > rev {
		return
	}
	if !ok && len(c.m) >= maxCachedRuns {
		for k := range c.m { // an arbitrary one: a miss costs one read
			delete(c.m, k)
			break
		}
	}
	c.m[id] = cachedRun{body: body, rev: rev}
}

func (c *runCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
