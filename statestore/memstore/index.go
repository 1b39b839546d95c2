package memstore

import (
	"cmp"
	"slices"

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

// sortedSet is a sorted slice of keys. Adding the greatest key (a run
// created now, a generated dead-letter ID) appends; any other change moves
// the keys after it.
type sortedSet[K any] struct {
	keys    []K
	compare func(a, b K) int
}

func newSortedSet[K any](compare func(a, b K) int) *sortedSet[K] {
	return &sortedSet[K]{compare: compare}
}

func (s *sortedSet[K]) add(k K) {
	n := len(s.keys)
	if n == 0 || s.compare(s.keys[n-1], k) < 0 {
		s.keys = append(s.keys, k)
		return
	}
	i, found := slices.BinarySearchFunc(s.keys, k, s.compare)
	if !found {
		s.keys = slices.Insert(s.keys, i, k)
	}
}

func (s *sortedSet[K]) remove(k K) {
	if i, found := slices.BinarySearchFunc(s.keys, k, s.compare); found {
		s.keys = slices.Delete(s.keys, i, i+1)
	}
}

// page returns up to limit keys after the key after (from the start when
// hasAfter is false), in order or, with reverse, in reverse order, and
// whether more follow.
func (s *sortedSet[K]) page(after K, hasAfter, reverse bool, limit int) ([]K, bool) {
	if s == nil {
		return nil, false
	}
	var out []K
	if !reverse {
		i := 0
		if hasAfter {
			var found bool
			if i, found = slices.BinarySearchFunc(s.keys, after, s.compare); found {
				i++
			}
		}
		end := min(len(s.keys), i+limit)
		out = append(out, s.keys[i:end]...)
		return out, end < len(s.keys)
	}
	i := len(s.keys)
	if hasAfter {
		i, _ = slices.BinarySearchFunc(s.keys, after, s.compare)
	}
	start := max(0, i-limit)
	out = append(out, s.keys[start:i]...)
	slices.Reverse(out)
	return out, start > 0
}
