package host_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// TestLimits_DurablePayloadCaps: a checkpoint over the cap is an error the
// guest sees (naming the limit), not a trap, and nothing is stored.
func TestLimits_DurablePayloadCaps(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	load(t, h, "kitchen", abi.Manifest{})
	d := &memDurable{state: map[string][]byte{}}
	ctx := context.Background()
	if _, err := h.Call(ctx, "kitchen", "big_checkpoint", []byte("1024"), host.WithDurable(d)); err != nil {
		t.Fatalf("a 1 KiB checkpoint: %v", err)
	}
	_, err := h.Call(ctx, "kitchen", "big_checkpoint", []byte("5000000"), host.WithDurable(d))
	var ge *host.GuestError
	if !errors.As(err, &ge) || ge.Kind != host.KindFailed || !strings.Contains(ge.Msg, "over the host's size limit") {
		t.Fatalf("a 5 MB checkpoint = %v; want a failure the guest reports", err)
	}
	if len(d.checkpoint) != 1024 {
		t.Fatalf("stored checkpoint is %d bytes, want the earlier 1024", len(d.checkpoint))
	}
	if len(rec.levels("checkpoint_save refused")) != 1 {
		t.Fatal("the refusal was not logged with its limit")
	}
}

// TestLimits_LogLine: a guest log line over max_log_line is cut, and says so.
func TestLimits_LogLine(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	load(t, h, "kitchen", abi.Manifest{MaxLogLine: 64})
	if _, err := h.Call(context.Background(), "kitchen", "log", []byte(strings.Repeat("x", 1000))); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var n int
	for _, r := range rec.recs {
		if strings.HasPrefix(r.Message, "xxxx") {
			n++
			if r.Message != strings.Repeat("x", 64)+"… [truncated at max_log_line 64B]" {
				t.Fatalf("log line not cut at 64 bytes: %q", r.Message)
			}
		}
	}
	if n != 4 {
		t.Fatalf("%d log lines, want 4", n)
	}
}

// TestHealth_GuestExport: the plugin check calls the guest's health export.
func TestHealth_GuestExport(t *testing.T) {
	h := newHost(t)
	load(t, h, "sick", abi.Manifest{Config: map[string]string{"healthy": "no"}})
	load(t, h, "well", abi.Manifest{})
	ctx := context.Background()
	if r := h.PluginCheck("sick")(ctx); r.OK || !strings.Contains(r.Message, "dependency unreachable") {
		t.Fatalf("sick plugin: %+v", r)
	}
	if r := h.PluginCheck("well")(ctx); !r.OK {
		t.Fatalf("well plugin: %+v", r)
	}
	m := resilience.NewMonitor()
	if err := m.Register("plugin:sick", h.PluginCheck("sick"), time.Hour); err != nil {
		t.Fatal(err)
	}
	m.CheckNow(ctx)
	if st, _ := m.Status("plugin:sick"); st.Status == resilience.Healthy || st.Status == resilience.StatusUnknown {
		t.Fatalf("monitor says %v for a plugin whose health export fails", st.Status)
	}
}

// TestHost_CheckpointInterval: plugins read the host's automatic checkpoint
// interval from their config unless their manifest sets it.
func TestHost_CheckpointInterval(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		opts []host.Option
		m    abi.Manifest
		want string
	}{
		{want: "10s"},
		{opts: []host.Option{host.WithCheckpointInterval(3 * time.Second)}, want: "3s"},
		{m: abi.Manifest{Config: map[string]string{abi.ConfigCheckpointInterval: "1m"}}, want: "1m0s"},
	} {
		h := newHost(t, tt.opts...)
		load(t, h, "kitchen", tt.m)
		if out, err := h.Call(ctx, "kitchen", "checkpoint_interval", nil); err != nil || string(out) != tt.want {
			t.Fatalf("interval = %q, %v; want %s", out, err, tt.want)
		}
	}
}
