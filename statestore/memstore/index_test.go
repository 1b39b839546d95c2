package memstore

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSortedSet_Random checks add, remove and page against a sorted slice,
// with enough keys to split and empty chunks.
func TestSortedSet_Random(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	s := newSortedSet(strings.Compare)
	var ref []string
	key := func() string {
		return string(rune('a'+rnd.IntN(26))) + string(rune('a'+rnd.IntN(26))) + string(rune('a'+rnd.IntN(26)))
	}
	for op := range 20000 {
		k := key()
		if rnd.IntN(3) == 0 {
			s.remove(k)
			if i, ok := slices.BinarySearch(ref, k); ok {
				ref = slices.Delete(ref, i, i+1)
			}
		} else {
			s.add(k)
			if i, ok := slices.BinarySearch(ref, k); !ok {
				ref = slices.Insert(ref, i, k)
			}
		}
		if op%500 != 0 {
			continue
		}
		if got := s.all(); !slices.Equal(got, ref) {
			t.Fatalf("op %d: %d keys, want %d", op, len(got), len(ref))
		}
		for _, c := range s.chunks {
			if len(c) == 0 || len(c) > chunkMax {
				t.Fatalf("op %d: chunk of %d keys", op, len(c))
			}
		}
		for range 20 {
			after, has, rev, limit := key(), rnd.IntN(4) > 0, rnd.IntN(2) == 0, 1+rnd.IntN(700)
			got, more := s.page(after, has, rev, limit)
			want := wantPage(ref, after, has, rev, limit+1)
			wantMore := len(want) > limit
			want = want[:min(limit, len(want))]
			if !slices.Equal(got, want) || more != wantMore {
				t.Fatalf("op %d: page(%q, %v, rev %v, %d) = %d keys (more %v), want %d (more %v)", op, after, has, rev, limit, len(got), more, len(want), wantMore)
			}
		}
	}
}

func wantPage(ref []string, after string, has, rev bool, n int) []string {
	var out []string
	if !rev {
		for _, k := range ref {
			if (!has || k > after) && len(out) < n {
				out = append(out, k)
			}
		}
		return out
	}
	for i := len(ref) - 1; i >= 0; i-- {
		if (!has || ref[i] < after) && len(out) < n {
			out = append(out, ref[i])
		}
	}
	return out
}
