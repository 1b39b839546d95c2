package memstore

import (
	"cmp"
	"slices"
	"sort"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// orderKey orders runs as ListRuns does: creation time, then ID.
type orderKey struct {
	ns int64
	id string
}

func runKey(r statestore.Run) orderKey { return orderKey{r.CreatedAt.UnixNano(), r.ID} }

func compareKeys(a, b orderKey) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.id, b.id))
}

// chunkMax bounds a chunk of a sortedSet, and so what a change moves.
const chunkMax = 512

// sortedSet is a sorted set of keys in chunks of at most chunkMax: a change
// moves at most a chunk's keys and the chunk list's pointers, O(chunkMax +
// n/chunkMax) with n keys; a lookup is two binary searches. Adding a key
// above every other one (a run created now, a generated dead-letter ID)
// appends to the last chunk.
type sortedSet[K any] struct {
	chunks  [][]K // sorted, none empty
	compare func(a, b K) int
}

func newSortedSet[K any](compare func(a, b K) int) *sortedSet[K] {
	return &sortedSet[K]{compare: compare}
}

// find returns the chunk and the position in it of the first key >= k
// (len(chunks), 0 when every key is below k), and whether it is k.
func (s *sortedSet[K]) find(k K) (ci, i int, found bool) {
	ci = sort.Search(len(s.chunks), func(j int) bool {
		c := s.chunks[j]
		return s.compare(c[len(c)-1], k) >= 0
	})
	if ci == len(s.chunks) {
		return ci, 0, false
	}
	i, found = slices.BinarySearchFunc(s.chunks[ci], k, s.compare)
	return ci, i, found
}

func (s *sortedSet[K]) add(k K) {
	ci, i, found := s.find(k)
	switch {
	case found:
		return
	case ci == len(s.chunks):
		if last := len(s.chunks) - 1; last >= 0 && len(s.chunks[last]) < chunkMax {
			s.chunks[last] = append(s.chunks[last], k)
		} else {
			s.chunks = append(s.chunks, append(make([]K, 0, chunkMax), k))
		}
		return
	}
	c := slices.Insert(s.chunks[ci], i, k)
	if len(c) <= chunkMax {
		s.chunks[ci] = c
		return
	}
	h := len(c) / 2
	right := append(make([]K, 0, chunkMax), c[h:]...)
	clear(c[h:])
	s.chunks[ci] = c[:h]
	s.chunks = slices.Insert(s.chunks, ci+1, right)
}

func (s *sortedSet[K]) remove(k K) {
	ci, i, found := s.find(k)
	if !found {
		return
	}
	if c := slices.Delete(s.chunks[ci], i, i+1); len(c) > 0 {
		s.chunks[ci] = c
	} else {
		s.chunks = slices.Delete(s.chunks, ci, ci+1)
	}
}

// len returns the number of keys.
func (s *sortedSet[K]) len() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, c := range s.chunks {
		n += len(c)
	}
	return n
}

func (s *sortedSet[K]) empty() bool { return s == nil || len(s.chunks) == 0 }

// all returns every key in order.
func (s *sortedSet[K]) all() []K {
	if s == nil {
		return nil
	}
	var out []K
	for _, c := range s.chunks {
		out = append(out, c...)
	}
	return out
}

// page returns up to limit keys after the key after (from the start when
// hasAfter is false), in order or, with reverse, in reverse order, and
// whether more follow.
func (s *sortedSet[K]) page(after K, hasAfter, reverse bool, limit int) ([]K, bool) {
	if s.empty() {
		return nil, false
	}
	var out []K
	if !reverse {
		ci, i := 0, 0
		if hasAfter {
			var found bool
			if ci, i, found = s.find(after); found {
				i++
			}
		}
		for ci < len(s.chunks) {
			if i >= len(s.chunks[ci]) {
				ci, i = ci+1, 0
				continue
			}
			if len(out) == limit {
				return out, true
			}
			out = append(out, s.chunks[ci][i])
			i++
		}
		return out, false
	}
	ci, i := len(s.chunks), 0
	if hasAfter {
		ci, i, _ = s.find(after)
	}
	// Step back from the first key >= after (or the end).
	i--
	for ci >= 0 {
		if i < 0 || ci == len(s.chunks) {
			ci--
			if ci >= 0 {
				i = len(s.chunks[ci]) - 1
			}
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, s.chunks[ci][i])
		i--
	}
	return out, false
}

// each calls fn with every key in order until fn returns false.
func (s *sortedSet[K]) each(fn func(K) bool) {
	if s == nil {
		return
	}
	for _, c := range s.chunks {
		for _, k := range c {
			if !fn(k) {
				return
			}
		}
	}
}
