package host

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCallCtx_Deadline: without anyone asking for Done, Err reports the
// deadline by the clock; Done, once asked for, closes at the deadline.
func TestCallCtx_Deadline(t *testing.T) {
	c := newCallCtx(context.Background(), time.Now(), 30*time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	time.Sleep(40 * time.Millisecond)
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline = %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is open after the deadline")
	}
	c.release()

	c = newCallCtx(context.Background(), time.Now(), 30*time.Millisecond)
	select {
	case <-c.Done():
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close at the deadline")
	}
	c.release()
}

// TestCallCtx_Parent: the caller's deadline wins when earlier, and its
// cancellation reaches Err and Done.
func TestCallCtx_Parent(t *testing.T) {
	pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newCallCtx(pctx, time.Now(), time.Hour)
	pdl, _ := pctx.Deadline()
	if dl, ok := c.Deadline(); !ok || !dl.Equal(pdl) {
		t.Fatalf("Deadline = %v, %v; want the caller's %v", dl, ok, pdl)
	}
	done := c.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close when the caller cancelled")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want context.Canceled", err)
	}
	c.release()

	pctx, cancel = context.WithCancel(context.Background())
	c = newCallCtx(pctx, time.Now(), time.Hour)
	cancel()
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err without Done = %v, want context.Canceled", err)
	}
	c.release()
}

// TestCallCtx_HandedOutNotReused: a context whose Done was taken is done
// once its call ends and is never handed to another call; one whose Done
// was not is reused clean.
func TestCallCtx_HandedOutNotReused(t *testing.T) {
	c := newCallCtx(context.Background(), time.Now(), time.Hour)
	done := c.Done()
	c.release()
	select {
	case <-done:
	default:
		t.Fatal("Done is open after the call ended")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after the call = %v, want context.Canceled", err)
	}
	for range 100 {
		d := newCallCtx(context.Background(), time.Now(), time.Hour)
		if d == c {
			t.Fatal("a context whose Done was taken was reused")
		}
		if d.Err() != nil || d.Value(callKey{}) != nil {
			t.Fatalf("a reused context is not clean: %v, %v", d.Err(), d.Value(callKey{}))
		}
		d.release()
	}
}
