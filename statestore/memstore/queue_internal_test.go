package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Tasks released with a delay wait outside the queue a claim reads, so a
// claim's cost does not grow with the sleeping tasks; they join it, in
// release order, when due or woken.
func TestQueue_SleepersOutsideTheClaimQueue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	const n = 1000
	for i := range n {
		id := fmt.Sprintf("r%04d", i)
		if _, _, err := s.SubmitRun(ctx, statestore.Run{ID: id, Workflow: "wf"}, []statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := s.ClaimTasks(ctx, "o", n, time.Minute)
	if err != nil || len(tasks) != n {
		t.Fatalf("claimed %d, %v", len(tasks), err)
	}
	for i, task := range tasks {
		// r0000 sleeps longest: due order is the reverse of release order.
		if err := s.ReleaseTask(ctx, task.Fence(), time.Duration(n-i)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.queued.len(); got != 0 {
		t.Fatalf("%d sleeping tasks in the claim queue, want 0", got)
	}
	if got, err := s.ClaimTasks(ctx, "o", n, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("claimed %d sleeping tasks, %v", len(got), err)
	}
	if err := s.WakeTask(ctx, "r0500", "a"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second) // r0999, r0998 and r0997 are due
	got, err := s.ClaimTasks(ctx, "o", n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range got {
		ids = append(ids, task.RunID)
	}
	if want := "[r0500 r0997 r0998 r0999]"; fmt.Sprint(ids) != want {
		t.Fatalf("claimed %v, want %s (release order)", ids, want)
	}
	if got := s.sleeping.len(); got != n-4 {
		t.Fatalf("%d tasks sleeping, want %d", got, n-4)
	}
	if err := s.DropTasks(ctx, "r0001"); err != nil {
		t.Fatal(err)
	}
	if got := s.sleeping.len(); got != n-5 {
		t.Fatalf("%d tasks sleeping after a run's tasks were dropped, want %d", got, n-5)
	}
}
