package host_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// tinyVariant is the tiny fixture with a custom section named tag added:
// the same behaviour under another version.
func tinyVariant(t *testing.T, tag string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if tag == "" {
		return b
	}
	sec := append(append([]byte{byte(len(tag))}, tag...), '!')
	return append(append(b, 0, byte(len(sec))), sec...)
}

func TestHost_LoadPinned(t *testing.T) {
	ctx := context.Background()
	h := hosttest.New(t)
	v1, v2 := tinyVariant(t, ""), tinyVariant(t, "v2")
	cur, err := h.Load(ctx, "tiny", v2, abi.Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	old := host.Version(v1)
	if h.HasVersion("tiny", old) {
		t.Fatal("HasVersion of a version never loaded")
	}
	if _, err := h.Call(ctx, "tiny", "echo", []byte("x"), host.WithVersion(old)); !errors.Is(err, host.ErrNoPlugin) {
		t.Fatalf("call pinned to a version not loaded: %v, want ErrNoPlugin", err)
	}
	pv, err := h.LoadPinned(ctx, "tiny", v1, abi.Manifest{})
	if err != nil || pv != old {
		t.Fatalf("LoadPinned = %s, %v; want %s", pv, err, old)
	}
	if !h.HasVersion("tiny", old[:12]) || !h.HasVersion("tiny", cur) {
		t.Error("HasVersion misses the pinned or the current version")
	}
	res, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "tiny", Function: "echo", Input: []byte("hello"), Version: old})
	if err != nil || string(res.Output) != "hello" || res.Version != old {
		t.Fatalf("pinned call = %q from %s, %v; want hello from %s", res.Output, res.Version, err, old)
	}
	res, err = h.Invoke(ctx, host.InvokeRequest{Plugin: "tiny", Function: "echo", Input: []byte("hi")})
	if err != nil || res.Version != cur {
		t.Fatalf("unpinned call ran %s, %v; want the current %s", res.Version, err, cur)
	}
	if info, _ := h.Plugin("tiny"); info.Version != cur {
		t.Errorf("LoadPinned changed the current version to %s", info.Version)
	}
	vs := h.Versions()
	if len(vs) != 2 || vs[0].Plugin != "tiny" || vs[0].Pinned == vs[1].Pinned {
		t.Errorf("Versions = %+v, want the current and the pinned version", vs)
	}
	// A plugin with only a pinned version: no current one, pinned calls run.
	if _, err := h.LoadPinned(ctx, "other", v1, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Call(ctx, "other", "noop", nil, host.WithVersion(old)); err != nil {
		t.Errorf("pinned call to a plugin without a current version: %v", err)
	}
	if _, err := h.Call(ctx, "other", "noop", nil); !errors.Is(err, host.ErrNoPlugin) {
		t.Errorf("unpinned call to a plugin with only a pinned version: %v, want ErrNoPlugin", err)
	}
	if _, err := h.LoadPinned(ctx, "bad", []byte("not wasm"), abi.Manifest{}); !errors.Is(err, host.ErrInvalidModule) {
		t.Errorf("LoadPinned of garbage: %v, want ErrInvalidModule", err)
	}
}

// TestHost_LoadPinnedEvicts: at most MaxPinned versions of a plugin stay
// pinned; the oldest goes first.
func TestHost_LoadPinnedEvicts(t *testing.T) {
	ctx := context.Background()
	h := hosttest.New(t)
	var first string
	for i := range host.MaxPinned + 1 {
		v, err := h.LoadPinned(ctx, "tiny", tinyVariant(t, string(rune('a'+i))), abi.Manifest{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = v
		}
	}
	if h.HasVersion("tiny", first) {
		t.Error("the oldest pinned version is still loaded")
	}
	if n := len(h.Versions()); n != host.MaxPinned {
		t.Errorf("%d versions loaded, want %d", n, host.MaxPinned)
	}
}
