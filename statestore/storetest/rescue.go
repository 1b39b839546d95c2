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
// ExpiredFor says whether such a task waits and for how long, and claims
// nothing.
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
	var first time.Duration
	for expired := false; !expired; {
		if time.Now().After(deadline) {
			t.Fatal("ExpiredFor still false 10s after the leases of r1/a and r2/a ended")
		}
		time.Sleep(50 * time.Millisecond)
		var err error
		if first, expired, err = other.ExpiredFor(ctx); err != nil {
			t.Fatalf("ExpiredFor: %v", err)
		}
	}
	if first < 0 || first > 5*time.Second {
		t.Fatalf("ExpiredFor just after the leases ended = %s", first)
	}
	time.Sleep(100 * time.Millisecond)
	if later := wantExpired(t, other, true, "looked at once already (it claims nothing)"); later < first+50*time.Millisecond {
		t.Fatalf("ExpiredFor = %s, then %s 100ms later: want the wait to grow", first, later)
	}
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

func wantExpired(t *testing.T, s QueueStore, want bool, when string) time.Duration {
	t.Helper()
	waited, got, err := s.ExpiredFor(context.Background())
	if err != nil || got != want {
		t.Fatalf("ExpiredFor %s = %s, %v, %v; want %v", when, waited, got, err, want)
	}
	return waited
}

// testClaimOwn: ClaimOwnTasks takes back, under new claims, the tasks the
// owner holds, though their leases hold; other owners' claims and queued
// tasks are left.
func testClaimOwn(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		submit(t, s, id, root("a"))
	}
	held := claimAll(t, s, "h1", 2, time.Hour)
	if got := taskNames(held); fmt.Sprint(got) != "[r1/a r2/a]" {
		t.Fatalf("claimed %v, want [r1/a r2/a]", got)
	}
	others := claimAll(t, s, "h2", 1, time.Hour)
	if got, err := other.ClaimOwnTasks(ctx, "h3", 10, lease); err != nil || len(got) != 0 {
		t.Fatalf("ClaimOwnTasks of an owner without claims = %v, %v; want none", taskNames(got), err)
	}
	if got, err := other.ClaimOwnTasks(ctx, "h1", 1, lease); err != nil || len(got) != 1 || got[0].Claims != 2 {
		t.Fatalf("ClaimOwnTasks of at most 1 = %+v, %v; want one task, claimed twice", got, err)
	}
	// The claim just made is h1's too: it is taken again.
	got, err := other.ClaimOwnTasks(ctx, "h1", 10, lease)
	if err != nil {
		t.Fatalf("ClaimOwnTasks: %v", err)
	}
	if names := taskNames(got); fmt.Sprint(names) != "[r1/a r2/a]" {
		t.Fatalf("ClaimOwnTasks took %v, want h1's [r1/a r2/a]", names)
	}
	for i, r := range got {
		if r.Owner != "h1" || r.Claims < 2 || r.Token == held[0].Token || r.Token == held[1].Token {
			t.Fatalf("task taken back %d %+v: want owner h1, claimed again, a new token", i, r)
		}
		if err := other.CheckFence(ctx, r.Fence()); err != nil {
			t.Fatalf("CheckFence of the new claim: %v", err)
		}
	}
	for _, h := range held {
		wantErr(t, "CheckFence of a claim taken back", s.CheckFence(ctx, h.Fence()), statestore.ErrFenced)
	}
	if err := s.CheckFence(ctx, others[0].Fence()); err != nil {
		t.Fatalf("CheckFence of another owner's claim: %v", err)
	}
	if rest := claimAll(t, s, "h3", 10, lease); fmt.Sprint(taskNames(rest)) != "[r4/a]" {
		t.Fatalf("ClaimTasks after ClaimOwnTasks = %v, want the queued r4/a", taskNames(rest))
	}
	_, err = s.ClaimOwnTasks(ctx, "", 1, lease)
	wantErr(t, "ClaimOwnTasks without owner", err, statestore.ErrInvalid)
	_, err = s.ClaimOwnTasks(ctx, "h1", 0, lease)
	wantErr(t, "ClaimOwnTasks of 0", err, statestore.ErrInvalid)
}
