package quota

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// store is a plugin state the tests write through an Account.
type store struct {
	mu   sync.Mutex
	kv   map[string][]byte
	fail bool
}

func (s *store) usage() (Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var u Usage
	for k, v := range s.kv {
		u.Keys++
		u.Bytes += int64(len(k) + len(v))
	}
	return u, nil
}

func (s *store) set(a *Account, lim Limits, k string, v []byte) error {
	unlock := a.Lock(k)
	defer unlock()
	s.mu.Lock()
	old, found := s.kv[k]
	s.mu.Unlock()
	d := Delta(k, old, found, v)
	if err := a.Reserve(lim, d, s.usage); err != nil {
		return err
	}
	s.mu.Lock()
	ok := !s.fail
	if ok {
		s.kv[k] = v
	}
	s.mu.Unlock()
	a.Done(d, ok)
	if !ok {
		return errors.New("store failed")
	}
	return nil
}

func (s *store) del(a *Account, lim Limits, k string) {
	unlock := a.Lock(k)
	defer unlock()
	s.mu.Lock()
	old, found := s.kv[k]
	s.mu.Unlock()
	d := DeleteDelta(k, old, found)
	if err := a.Reserve(lim, d, s.usage); err != nil {
		panic(err)
	}
	s.mu.Lock()
	delete(s.kv, k)
	s.mu.Unlock()
	a.Done(d, true)
}

// TestAccount_Hammer: writers racing for the last room of a quota, with
// overwrites and deletes of shared keys, never take the store past it,
// and the count ends equal to the store's.
func TestAccount_Hammer(t *testing.T) {
	s := &store{kv: map[string][]byte{"pre": make([]byte, 97)}}
	var a Account
	lim := Limits{Keys: 50, Bytes: 4000}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				k := fmt.Sprintf("k%d", (i*7+w)%80)
				if i%5 == 4 {
					s.del(&a, lim, k)
					continue
				}
				err := s.set(&a, lim, k, make([]byte, (i*w)%200))
				var qe *Error
				if errors.As(err, &qe) {
					mu.Lock()
					refused++
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
				}
				u, _ := s.usage()
				if u.Keys > lim.Keys || u.Bytes > lim.Bytes {
					t.Errorf("store holds %+v, over %+v", u, lim)
				}
			}
		}()
	}
	wg.Wait()
	if refused == 0 {
		t.Fatal("no write was refused")
	}
	if u, _ := s.usage(); a.Used() != u {
		t.Fatalf("count %+v, store %+v", a.Used(), u)
	}
}

// TestAccount_Refusals: the key and the byte quota refuse growth only.
func TestAccount_Refusals(t *testing.T) {
	s := &store{kv: map[string][]byte{}}
	var a Account
	lim := Limits{Keys: 2, Bytes: 10}
	if err := s.set(&a, lim, "a", []byte("1234")); err != nil { // 5 bytes
		t.Fatal(err)
	}
	if err := s.set(&a, lim, "b", []byte("1")); err != nil { // 7 bytes
		t.Fatal(err)
	}
	var qe *Error
	if err := s.set(&a, lim, "c", nil); !errors.As(err, &qe) || qe.Limit != "state_keys" {
		t.Fatalf("third key: %v", err)
	}
	if err := s.set(&a, lim, "b", []byte("12345")); !errors.As(err, &qe) || qe.Limit != "state_bytes" {
		t.Fatalf("growing b past 10 bytes: %v", err)
	}
	if err := s.set(&a, Limits{Keys: 1, Bytes: 1}, "a", nil); err != nil {
		t.Fatalf("shrinking a key over a lowered quota: %v", err)
	}
	s.del(&a, lim, "b")
	if err := s.set(&a, lim, "c", []byte("12345678")); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// TestAccount_FailedWriteReloads: after a failed write the count is read
// from the store again.
func TestAccount_FailedWriteReloads(t *testing.T) {
	s := &store{kv: map[string][]byte{}}
	var a Account
	lim := Limits{Keys: 10, Bytes: 100}
	s.fail = true
	if err := s.set(&a, lim, "a", []byte("x")); err == nil {
		t.Fatal("want the store's error")
	}
	s.fail = false
	s.kv["outside"] = []byte("written past the account")
	if err := s.set(&a, lim, "b", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.usage(); a.Used() != u {
		t.Fatalf("count %+v, store %+v", a.Used(), u)
	}
}

// TestLimiter_Rate: a burst of one second's worth, then the rate; refused
// lines are summarised at most once a second.
func TestLimiter_Rate(t *testing.T) {
	l := NewLimiter(10, 1000)
	now := time.Unix(0, 0)
	n := 0
	for range 100 {
		if l.Allow(now, 10) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d lines of a burst, want 10", n)
	}
	if lines, bytes, ok := l.Summary(now); !ok || lines != 90 || bytes != 900 {
		t.Fatalf("summary = %d lines, %d bytes, %v", lines, bytes, ok)
	}
	now = now.Add(500 * time.Millisecond)
	n = 0
	for range 100 {
		if l.Allow(now, 10) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d lines after half a second, want 5", n)
	}
	if _, _, ok := l.Summary(now); ok {
		t.Fatal("a second summary within a second")
	}
	now = now.Add(time.Second)
	if lines, _, ok := l.Summary(now); !ok || lines != 95 {
		t.Fatalf("summary = %d lines, %v; want 95", lines, ok)
	}
	// bytes: 1000 a second; a line longer than that passes a full bucket.
	b := NewLimiter(0, 1000)
	if !b.Allow(now, 5000) || b.Allow(now, 1) {
		t.Fatal("byte bucket")
	}
}
