package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Fleet is a store with the capabilities hosts share it by.
type Fleet interface {
	statestore.Store
	statestore.Hosts
	statestore.Modules
}

// RunFleet runs the conformance suite of statestore.Hosts and
// statestore.Modules. shared says whether many processes share the store
// (every registered host is listed) or one owns it (registering forgets
// the others).
func RunFleet(t *testing.T, newStore func(t *testing.T) statestore.Store, shared bool) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Fleet)
	}{
		{"Hosts", func(t *testing.T, s Fleet) { testHosts(t, s, shared) }},
		{"Hosts_Stale", testHostsStale},
		{"Hosts_Invalid", testHostsInvalid},
		{"Modules", testModules},
		{"Modules_Hammer", testModulesHammer},
		{"Modules_Invalid", testModulesInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			t.Cleanup(func() { _ = st.Close() })
			s, ok := st.(Fleet)
			if !ok {
				t.Fatalf("%T does not implement statestore.Hosts and statestore.Modules", st)
			}
			tt.fn(t, s)
		})
	}
}

func testHosts(t *testing.T, s Fleet, shared bool) {
	ctx := context.Background()
	a, err := s.RegisterHost(ctx, statestore.HostInfo{ID: "a", Address: "10.0.0.1:7070", Version: "v1", Heartbeat: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if a.StartedAt.IsZero() || !a.StartedAt.Equal(a.LastSeen) {
		t.Fatalf("registered %+v: want StartedAt = LastSeen, set", a)
	}
	if _, err := s.RegisterHost(ctx, statestore.HostInfo{ID: "b", Address: "10.0.0.2:7070", Version: "v1", Heartbeat: time.Minute}); err != nil {
		t.Fatal(err)
	}
	hs, err := s.ListHosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"b"}
	if shared {
		want = []string{"a", "b"}
	}
	if got := hostIDs(hs); !equalStrings(got, want) {
		t.Fatalf("ListHosts = %v, want %v", got, want)
	}
	for _, h := range hs {
		if !h.Live() || h.Heartbeat != time.Minute || h.Version != "v1" || h.Address == "" {
			t.Errorf("host %+v: want live, as registered", h)
		}
	}
	plugins := []statestore.HostPlugin{{Plugin: "echo", Version: "v2"}, {Plugin: "add", Version: "v1"}, {Plugin: "echo", Version: "v1"}}
	if err := s.HostHeartbeat(ctx, "b", plugins); err != nil {
		t.Fatal(err)
	}
	hs, _ = s.ListHosts(ctx)
	b := hs[len(hs)-1]
	wantPlugins := []statestore.HostPlugin{{Plugin: "add", Version: "v1"}, {Plugin: "echo", Version: "v1"}, {Plugin: "echo", Version: "v2"}}
	if len(b.Plugins) != 3 || b.Plugins[0] != wantPlugins[0] || b.Plugins[2] != wantPlugins[2] {
		t.Errorf("plugins after heartbeat = %v, want %v", b.Plugins, wantPlugins)
	}
	if b.LastSeen.Before(b.StartedAt) {
		t.Errorf("LastSeen %v before StartedAt %v", b.LastSeen, b.StartedAt)
	}
	if err := s.HostHeartbeat(ctx, "nobody", nil); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("heartbeat of an unregistered host: %v, want ErrNotFound", err)
	}
	if err := s.RemoveHost(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveHost(ctx, "b"); err != nil {
		t.Errorf("removing a removed host: %v", err)
	}
	if err := s.HostHeartbeat(ctx, "b", nil); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("heartbeat of a removed host: %v, want ErrNotFound", err)
	}
	hs, _ = s.ListHosts(ctx)
	want = nil
	if shared {
		want = []string{"a"}
	}
	if got := hostIDs(hs); !equalStrings(got, want) {
		t.Fatalf("ListHosts after removing b = %v, want %v", got, want)
	}
}

// testHostsStale: a host that stops beating is listed as stale after
// MissedHeartbeats intervals, and live again once it beats.
func testHostsStale(t *testing.T, s Fleet) {
	ctx := context.Background()
	const every = 50 * time.Millisecond
	// The host's last beat is stamped while RegisterHost runs: measuring
	// from before the call, a slow answer cannot make staleness look early.
	start := time.Now()
	if _, err := s.RegisterHost(ctx, statestore.HostInfo{ID: "h", Heartbeat: every}); err != nil {
		t.Fatal(err)
	}
	for {
		hs, err := s.ListHosts(ctx)
		if err != nil || len(hs) != 1 {
			t.Fatalf("ListHosts = %v, %v", hs, err)
		}
		if !hs[0].Live() {
			if el := time.Since(start); el < statestore.MissedHeartbeats*every-10*time.Millisecond {
				t.Fatalf("stale after %v, before %d heartbeats of %v were missed", el, statestore.MissedHeartbeats, every)
			}
			if hs[0].Age < statestore.MissedHeartbeats*every {
				t.Fatalf("stale with age %v", hs[0].Age)
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("host not stale %v after its last heartbeat (age %v)", time.Since(start), hs[0].Age)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.HostHeartbeat(ctx, "h", nil); err != nil {
		t.Fatal(err)
	}
	hs, _ := s.ListHosts(ctx)
	if !hs[0].Live() {
		t.Errorf("host stale right after a heartbeat: age %v", hs[0].Age)
	}
}

func testHostsInvalid(t *testing.T, s Fleet) {
	ctx := context.Background()
	for _, h := range []statestore.HostInfo{
		{ID: "", Heartbeat: time.Second},
		{ID: "x\x00y", Heartbeat: time.Second},
		{ID: "x", Heartbeat: 0},
		{ID: "x", Heartbeat: time.Second, Address: "a\x00b"},
		{ID: "x", Heartbeat: time.Second, Version: "\xff"},
	} {
		if _, err := s.RegisterHost(ctx, h); !errors.Is(err, statestore.ErrInvalid) {
			t.Errorf("RegisterHost(%+v) = %v, want ErrInvalid", h, err)
		}
	}
	if err := s.HostHeartbeat(ctx, "", nil); !errors.Is(err, statestore.ErrInvalid) {
		t.Errorf("heartbeat of empty ID: %v", err)
	}
	if err := s.HostHeartbeat(ctx, "x", []statestore.HostPlugin{{Plugin: "p"}}); !errors.Is(err, statestore.ErrInvalid) {
		t.Errorf("heartbeat with a plugin without version: %v", err)
	}
	if hs, err := s.ListHosts(ctx); err != nil || len(hs) != 0 {
		t.Errorf("invalid registrations stored: %v, %v", hs, err)
	}
}

func testModules(t *testing.T, s Fleet) {
	ctx := context.Background()
	wasm := []byte("\x00asm\x01\x00\x00\x00 module one")
	v, err := s.PutModule(ctx, statestore.Module{Plugin: "echo", Wasm: wasm, Manifest: []byte(`{"timeout":"1s"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if v != statestore.HashInput(wasm) {
		t.Fatalf("version %s, want the SHA-256 %s", v, statestore.HashInput(wasm))
	}
	// Idempotent: the same bytes again, with the version given.
	if v2, err := s.PutModule(ctx, statestore.Module{Plugin: "echo", Version: v, Wasm: wasm, Manifest: []byte(`{"timeout":"2s"}`)}); err != nil || v2 != v {
		t.Fatalf("second put = %s, %v", v2, err)
	}
	// The same bytes as another plugin keep their own manifest.
	if _, err := s.PutModule(ctx, statestore.Module{Plugin: "other", Wasm: wasm}); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetModule(ctx, "echo", v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Wasm, wasm) || string(m.Manifest) != `{"timeout":"2s"}` || m.Plugin != "echo" || m.Version != v {
		t.Errorf("GetModule = %+v, want the bytes and the last manifest", m)
	}
	m.Wasm[0] = 'X' // the store keeps its own copy
	if m, _ := s.GetModule(ctx, "echo", v); !bytes.Equal(m.Wasm, wasm) {
		t.Errorf("the store's bytes changed with the caller's copy")
	}
	if m, err := s.GetModule(ctx, "other", v); err != nil || len(m.Manifest) != 0 {
		t.Errorf("other plugin: %+v, %v; want its empty manifest", m, err)
	}
	if _, err := s.GetModule(ctx, "missing", v); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("module of an unknown plugin: %v, want ErrNotFound", err)
	}
	if _, err := s.GetModule(ctx, "echo", statestore.HashInput([]byte("nope"))); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("unknown version: %v, want ErrNotFound", err)
	}
}

// testModulesHammer: hosts putting the same module at once store it once
// and all get the same version.
func testModulesHammer(t *testing.T, s Fleet) {
	ctx := context.Background()
	wasm := bytes.Repeat([]byte("wasm"), 64<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.PutModule(ctx, statestore.Module{Plugin: "big", Wasm: wasm, Manifest: []byte("{}")})
			if err == nil && v != statestore.HashInput(wasm) {
				err = errors.New("wrong version " + v)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	m, err := s.GetModule(ctx, "big", statestore.HashInput(wasm))
	if err != nil || !bytes.Equal(m.Wasm, wasm) {
		t.Fatalf("GetModule after concurrent puts: %d bytes, %v", len(m.Wasm), err)
	}
}

func testModulesInvalid(t *testing.T, s Fleet) {
	ctx := context.Background()
	for _, m := range []statestore.Module{
		{Plugin: "", Wasm: []byte("x")},
		{Plugin: "p", Wasm: nil},
		{Plugin: "p", Wasm: []byte("x"), Version: statestore.HashInput([]byte("y"))},
	} {
		if _, err := s.PutModule(ctx, m); !errors.Is(err, statestore.ErrInvalid) {
			t.Errorf("PutModule(%q, version %q) = %v, want ErrInvalid", m.Plugin, m.Version, err)
		}
	}
	for _, v := range []string{"", "abc", statestore.HashInput(nil)[:63] + "G"} {
		if _, err := s.GetModule(ctx, "p", v); !errors.Is(err, statestore.ErrInvalid) {
			t.Errorf("GetModule(version %q) = %v, want ErrInvalid", v, err)
		}
	}
}

func hostIDs(hs []statestore.HostInfo) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
