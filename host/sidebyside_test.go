package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// TestSideBySide_ASSDKWithUpstreamPDK loads one AssemblyScript module that
// uses bulkhead's SDK and the upstream @extism/as-pdk together: input,
// output, vars and errors written through one must be what the other and
// the host see.
func TestSideBySide_ASSDKWithUpstreamPDK(t *testing.T) {
	wasm := hosttest.Fixture(t, "assemblyscript/sidebyside/sidebyside.wasm")
	h := hosttest.New(t)
	const name = "sidebyside"
	if _, err := h.Load(context.Background(), name, wasm, abi.Manifest{Pool: abi.Pool{Max: 1}}); err != nil {
		t.Fatal(err)
	}

	t.Run("input from as-pdk, invocation from bulkhead", func(t *testing.T) {
		dl := time.Now().Add(5 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), dl)
		defer cancel()
		give := abi.Invocation{RunID: "run-ü2", Workflow: "wf \"x\"", Node: "resize", Attempt: 4, IdempotencyKey: abi.IdempotencyKey("run-ü2", "resize")}
		in := "héllo \"side\" by\nside"
		out, err := h.Call(ctx, name, "both", []byte(in), host.WithInvocation(give))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Input      *string         `json:"input"`
			Invocation json.RawMessage `json:"invocation"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Input == nil {
			t.Fatalf("both output %s: %v", out, err)
		}
		if *got.Input != in {
			t.Fatalf("input as the upstream PDK read it = %q, want %q", *got.Input, in)
		}
		inv, err := abi.DecodeInvocation(got.Invocation)
		if err != nil {
			t.Fatalf("invocation %s: %v", got.Invocation, err)
		}
		want := give
		want.DeadlineUnixMS, want.Plugin, want.PluginVersion = dl.UnixMilli(), name, host.Version(wasm)
		if inv != want {
			t.Fatalf("invocation = %+v\nwant         %+v", inv, want)
		}
	})

	t.Run("retry hint from bulkhead, error from as-pdk", func(t *testing.T) {
		_, err := h.Call(context.Background(), name, "retry_later", []byte("2500"))
		var ge *host.GuestError
		if !errors.As(err, &ge) {
			t.Fatalf("retry_later = %v (%T), want a *host.GuestError", err, err)
		}
		if ge.Kind != host.KindFailed || ge.Permanent() || ge.Msg != "busy, retry in 2500 ms" || ge.Hint != 2500*time.Millisecond {
			t.Fatalf("retry_later = %#v, want a retryable failure with the PDK's message and a 2.5 s hint", ge)
		}
		_, err = h.Call(context.Background(), name, "retry_later", []byte("soon"))
		if !errors.Is(err, host.ErrPermanent) {
			t.Fatalf("retry_later with a bad input = %v, want a permanent failure", err)
		}
	})

	t.Run("var set with as-pdk, read with bulkhead", func(t *testing.T) {
		out, err := h.Call(context.Background(), name, "shared_var", []byte("one"))
		if err != nil || string(out) != "one;prev=none" {
			t.Fatalf("first shared_var = %q, %v", out, err)
		}
		out, err = h.Call(context.Background(), name, "shared_var", []byte("two"))
		if err != nil || string(out) != "two;prev=one" {
			t.Fatalf("second shared_var = %q, %v, want the first call's value kept", out, err)
		}
	})
}
