package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// testClaimExpired: ClaimExpiredTasks takes only tasks whose lease ended,
// at most max at a time, and leaves queued tasks to ClaimTasks;
// HasExpiredTasks says whether such a task waits, and claims nothing.
func testClaimExpired(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	for _, id := range []string{"r1", "r2", "r3"} {
		submit(t, s, id, root("a"))
	}
	short := 300 * time.Millisecond
	held := claimAll(t, s, "h1", 2, short)
	if got := taskNames(held); fmt.Sprint(got) != "[r1/a r2/a]" {
		t.Fatalf("claimed %v, want [r1/a r2/a]", got)
	}
	if got, err := other.ClaimExpiredTasks(ctx, "h2", 10, lease); err != nil || len(got) != 0 {
		t.Fatalf("ClaimExpiredTasks while every lease holds = %v, %v; want none (queued r3/a is not taken)", taskNames(got), err)
	}
	wantExpired(t, other, false, "while every lease holds (r3/a is queued)")
	deadline := time.Now().Add(10 * time.Second)
	for expired := false; !expired; {
		if time.Now().After(deadline) {
			t.Fatal("HasExpiredTasks still false 10s after the leases of r1/a and r2/a ended")
		}
		time.Sleep(50 * time.Millisecond)
		var err error
		if expired, err = other.HasExpiredTasks(ctx); err != nil {
			t.Fatalf("HasExpiredTasks: %v", err)
		}
	}
	wantExpired(t, other, true, "looked at once already (it claims nothing)")
	var rescued []statestore.Task
	for len(rescued) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got, err := other.ClaimExpiredTasks(ctx, "h2", 1, lease)
		if err != nil {
			t.Fatalf("ClaimExpiredTasks: %v", err)
		}
		if len(got) > 1 {
			t.Fatalf("ClaimExpiredTasks of at most 1 = %v", taskNames(got))
		}
		rescued = append(rescued, got...)
		if len(rescued) == 1 {
			wantExpired(t, other, true, "with r2/a's lease ended and unclaimed")
		}
	}
	wantExpired(t, other, false, "once both expired tasks were claimed again")
	if got := taskNames(rescued); fmt.Sprint(got) != "[r1/a r2/a]" {
		t.Fatalf("rescued %v, want the two expired tasks [r1/a r2/a]", got)
	}
	for i, r := range rescued {
		if r.Owner != "h2" || r.Claims != 2 || r.Token == held[0].Token || r.Token == held[1].Token {
			t.Fatalf("rescued task %d %+v: want owner h2, second claim, a new token", i, r)
		}
		if err := other.CheckFence(ctx, r.Fence()); err != nil {
			t.Fatalf("CheckFence of the rescuer's claim: %v", err)
		}
	}
	for _, h := range held {
		wantErr(t, "CheckFence of a rescued claim", s.CheckFence(ctx, h.Fence()), statestore.ErrFenced)
	}
	if got, err := other.ClaimExpiredTasks(ctx, "h2", 10, lease); err != nil || len(got) != 0 {
		t.Fatalf("ClaimExpiredTasks of live claims = %v, %v; want none", taskNames(got), err)
	}
	if rest := claimAll(t, s, "h3", 10, lease); fmt.Sprint(taskNames(rest)) != "[r3/a]" || rest[0].Claims != 1 {
		t.Fatalf("ClaimTasks after the rescues = %+v, want the queued r3/a, claimed once", rest)
	}
	_, err := s.ClaimExpiredTasks(ctx, "", 1, lease)
	wantErr(t, "ClaimExpiredTasks without owner", err, statestore.ErrInvalid)
	_, err = s.ClaimExpiredTasks(ctx, "h1", 0, lease)
	wantErr(t, "ClaimExpiredTasks of 0", err, statestore.ErrInvalid)
	_, err = s.ClaimExpiredTasks(ctx, "h1", 1, 0)
	wantErr(t, "ClaimExpiredTasks without lease", err, statestore.ErrInvalid)
}

func wantExpired(t *testing.T, s QueueStore, want bool, when string) {
	t.Helper()
	if got, err := s.HasExpiredTasks(context.Background()); err != nil || got != want {
		t.Fatalf("HasExpiredTasks %s = %v, %v; want %v", when, got, err, want)
	}
}
