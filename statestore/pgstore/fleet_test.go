package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestStore_FleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) statestore.Store { return open(t, pgtest.URL(t)) }, true)
}

// TestStore_HostsShareTheDatabase: two stores (two hosts' pools) on one
// database see each other, and a host that stops beating is stale for both.
func TestStore_HostsShareTheDatabase(t *testing.T) {
	url := pgtest.URL(t)
	a, b := open(t, url), open(t, url)
	ctx := context.Background()
	if _, err := a.RegisterHost(ctx, statestore.HostInfo{ID: "a", Heartbeat: 40 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RegisterHost(ctx, statestore.HostInfo{ID: "b", Heartbeat: time.Minute}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := b.ListHosts(ctx)
		if err != nil || len(hs) != 2 {
			t.Fatalf("ListHosts from b = %v, %v; want a and b", hs, err)
		}
		if !hs[0].Live() && hs[1].Live() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a never went stale: %+v", hs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStore_GetModuleRefusesTamperedBytes: bytes changed in the database
// are refused with ErrModuleHash, naming both hashes.
func TestStore_GetModuleRefusesTamperedBytes(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	ctx := context.Background()
	v, err := s.PutModule(ctx, statestore.Module{Plugin: "echo", Wasm: []byte("\x00asm good"), Manifest: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "UPDATE modules SET wasm = $1 WHERE sha256 = $2", []byte("\x00asm evil"), v); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetModule(ctx, "echo", v)
	if !errors.Is(err, statestore.ErrModuleHash) {
		t.Fatalf("GetModule of tampered bytes = %v, want ErrModuleHash", err)
	}
	if bad := statestore.HashInput([]byte("\x00asm evil")); !strings.Contains(err.Error(), v) || !strings.Contains(err.Error(), bad) {
		t.Errorf("error %q does not name the version and the bytes' hash", err)
	}
}
