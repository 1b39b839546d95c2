package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// TestStore_UpdateRunAfterOtherHost: a host updates a run over the version
// it last saw without reading it first; when another host updated the run
// in between, or it was deleted and created again, the update runs on
// what the database holds, and a refusal of what the host last saw is no
// refusal.
func TestStore_UpdateRunAfterOtherHost(t *testing.T) {
	a, b, url := hosts(t)
	ctx := context.Background()
	if _, _, err := a.CreateRun(ctx, statestore.Run{ID: "r", Workflow: "wf", Status: statestore.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	// a's own updates follow each other.
	for _, v := range []string{"1", "2"} {
		if _, err := a.UpdateRun(ctx, "r", func(r *statestore.Run) error {
			if r.Attrs == nil {
				r.Attrs = map[string]string{}
			}
			r.Attrs["a"] = v
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.UpdateRun(ctx, "r", func(r *statestore.Run) error {
		if r.Attrs["a"] != "2" {
			t.Errorf("b read attrs %v, want a's second update", r.Attrs)
		}
		r.Attrs["b"] = "x"
		r.Status = statestore.StatusPending
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// a last saw the run running; it refuses anything but a pending run.
	got, err := a.UpdateRun(ctx, "r", func(r *statestore.Run) error {
		if r.Status != statestore.StatusPending {
			return errors.New("not pending")
		}
		r.Attrs["a"] = "3"
		return nil
	})
	if err != nil || got.Attrs["b"] != "x" || got.Attrs["a"] != "3" {
		t.Fatalf("a's update after b's = %+v, %v", got, err)
	}
	// The run is deleted and created again, at its first version once more.
	conn := connect(t, url)
	if _, _, err := a.CreateRun(ctx, statestore.Run{ID: "s", Workflow: "old", Status: statestore.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM runs WHERE id = $1", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CreateRun(ctx, statestore.Run{ID: "s", Workflow: "new", Status: statestore.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	got, err = a.UpdateRun(ctx, "s", func(r *statestore.Run) error {
		r.Status = statestore.StatusSucceeded
		return nil
	})
	if err != nil || got.Workflow != "new" {
		t.Fatalf("update of the run created again = %+v, %v", got, err)
	}
	if r, err := b.GetRun(ctx, "s"); err != nil || r.Workflow != "new" || r.Status != statestore.StatusSucceeded {
		t.Fatalf("GetRun after the update = %+v, %v", r, err)
	}
}
