package host_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// loadAbuse loads testdata/abuse.wasm, a guest that loops over state
// writes, checkpoints and log lines, as plugin name.
func loadAbuse(t *testing.T, h *host.Host, name string, m abi.Manifest) {
	t.Helper()
	wasm, err := os.ReadFile("testdata/abuse.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(context.Background(), name, wasm, m); err != nil {
		t.Fatal(err)
	}
}

func u64s(vs ...uint64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

// loop calls one of abuse's loops and returns (accepted, last code).
func loop(t *testing.T, h *host.Host, plugin, fn string, d host.Durable, args ...uint64) (ok, rc uint64) {
	t.Helper()
	out, err := h.Call(context.Background(), plugin, fn, u64s(args...), host.WithDurable(d))
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	if len(out) != 16 {
		t.Fatalf("%s output %q", fn, out)
	}
	return binary.LittleEndian.Uint64(out), binary.LittleEndian.Uint64(out[8:])
}

func (s *logSink) messages(msg string) []slog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slog.Record
	for _, r := range s.recs {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// recordSize is the length of a record's message and attributes as text.
func recordSize(r slog.Record) int {
	n := len(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		n += len(a.Key) + len(a.Value.String())
		return true
	})
	return n
}

// TestQuota_StateKeys: a guest writing keys in a loop gets HostQuota (not
// a trap) at the default quota of 10,000 keys, the state holds no more,
// the warnings of its refused writes are rate-limited with one summary,
// and another plugin writes on.
func TestQuota_StateKeys(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	loadAbuse(t, h, "abuse", abi.Manifest{})
	loadAbuse(t, h, "other", abi.Manifest{})
	d := &memDurable{state: map[string][]byte{}}
	start := time.Now()
	ok, rc := loop(t, h, "abuse", "state_loop", d, abi.DefaultStateKeys+500, 1, 0)
	elapsed := time.Since(start)
	if ok != abi.DefaultStateKeys || rc != uint64(abi.HostQuota) {
		t.Fatalf("%d writes accepted, last code %d; want %d and HostQuota", ok, rc, abi.DefaultStateKeys)
	}
	if keys, _, _ := d.StateUsage(context.Background()); keys != abi.DefaultStateKeys {
		t.Fatalf("the state holds %d keys", keys)
	}
	// A new key is still refused in a new call; an overwrite is not.
	if ok, rc := loop(t, h, "abuse", "state_loop", d, 1, 1, abi.DefaultStateKeys+1); ok != 0 || rc != uint64(abi.HostQuota) {
		t.Fatalf("a new key in a second call: %d accepted, code %d", ok, rc)
	}
	if ok, rc := loop(t, h, "abuse", "state_loop", d, 5, 1, 0); ok != 5 || rc != 0 {
		t.Fatalf("overwrites: %d accepted, code %d", ok, rc)
	}
	warns := rec.messages("state not set")
	if max := 10 + int(elapsed.Seconds()*10) + 2; len(warns) > max || len(warns) == 0 {
		t.Fatalf("%d warnings for 501 refused writes, want 1..%d", len(warns), max)
	}
	sums := rec.messages("host function warnings suppressed")
	if len(sums) == 0 || attr(sums[0], "lines").Int64() == 0 {
		t.Fatalf("no summary of the suppressed warnings: %v", sums)
	}
	od := &memDurable{state: map[string][]byte{}}
	if ok, rc := loop(t, h, "other", "state_loop", od, 3, 10, 0); ok != 3 || rc != 0 {
		t.Fatalf("another plugin: %d accepted, code %d", ok, rc)
	}
}

// TestQuota_StateBytes: the manifest's state_bytes counts keys and values;
// a write past it gets HostQuota and the state holds no more.
func TestQuota_StateBytes(t *testing.T) {
	h := newHost(t)
	loadAbuse(t, h, "abuse", abi.Manifest{StateBytes: 10 << 10})
	d := &memDurable{state: map[string][]byte{}}
	ok, rc := loop(t, h, "abuse", "state_loop", d, 50, 1000, 0)
	if ok != 10 || rc != uint64(abi.HostQuota) {
		t.Fatalf("%d writes of 1008 bytes accepted, last code %d; want 10 and HostQuota", ok, rc)
	}
	if _, bytes, _ := d.StateUsage(context.Background()); bytes > 10<<10 {
		t.Fatalf("the state holds %d bytes, over the 10 KiB quota", bytes)
	}
}

// TestQuota_StateHammer: instances of one plugin writing new keys at once
// get exactly the quota between them, no more.
func TestQuota_StateHammer(t *testing.T) {
	h := newHost(t)
	loadAbuse(t, h, "abuse", abi.Manifest{StateKeys: 150, Pool: abi.Pool{Max: 4}})
	d := &memDurable{state: map[string][]byte{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := uint64(0)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.Call(context.Background(), "abuse", "state_loop", u64s(100, 16, uint64(w)*1000), host.WithDurable(d))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total += binary.LittleEndian.Uint64(out)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if keys, _, _ := d.StateUsage(context.Background()); total != 150 || keys != 150 {
		t.Fatalf("%d writes accepted, %d keys stored; want 150", total, keys)
	}
}

// TestQuota_Checkpoint: a checkpoint over the manifest's max_checkpoint
// gets HostTooLarge and is not stored; the refusals' warnings are
// rate-limited.
func TestQuota_Checkpoint(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	loadAbuse(t, h, "abuse", abi.Manifest{MaxCheckpoint: 1 << 10})
	d := &memDurable{state: map[string][]byte{}}
	if ok, rc := loop(t, h, "abuse", "checkpoint_loop", d, 3, 1<<10); ok != 3 || rc != 0 {
		t.Fatalf("1 KiB checkpoints: %d saved, code %d", ok, rc)
	}
	if ok, rc := loop(t, h, "abuse", "checkpoint_loop", d, 1000, 1<<10+1); ok != 0 || rc != uint64(abi.HostTooLarge) {
		t.Fatalf("checkpoints over 1 KiB: %d saved, code %d", ok, rc)
	}
	if len(d.checkpoint) != 1<<10 {
		t.Fatalf("stored checkpoint is %d bytes", len(d.checkpoint))
	}
	if n := len(rec.messages("checkpoint_save refused")); n > 12 {
		t.Fatalf("%d warnings for 1000 refused checkpoints", n)
	}
}

// TestLimits_ErrorMessage: a 16 MiB error_set is cut to max_error (default
// 64 KiB), saying how much was dropped, in the call's error and in the line
// logged about it.
func TestLimits_ErrorMessage(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	loadAbuse(t, h, "abuse", abi.Manifest{})
	huge := []byte(strings.Repeat("é", 8<<20))
	_, err := h.Call(context.Background(), "abuse", "big_error", huge)
	var ge *host.GuestError
	if !errors.As(err, &ge) || ge.Kind != host.KindFailed {
		t.Fatalf("err = %v", err)
	}
	const max = abi.DefaultMaxErrorBytes
	if len(ge.Msg) > max || len(err.Error()) > max+200 {
		t.Fatalf("message is %d bytes, error %d; want at most %d", len(ge.Msg), len(err.Error()), max)
	}
	want := "bytes dropped at max_error 64KiB]"
	if !strings.HasPrefix(ge.Msg, "éé") || !strings.HasSuffix(ge.Msg, want) || !strings.Contains(ge.Msg, fmt.Sprint(len(huge)-strings.Index(ge.Msg, "…"))) {
		t.Fatalf("message does not end with how much was dropped: …%q", ge.Msg[len(ge.Msg)-80:])
	}
	// Through Invoke with a fallback, the failure is logged.
	p := resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 1}, Fallback: resilience.Fallback{Value: "fb"}}
	if _, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "abuse", Function: "big_error", Input: huge, Policy: &p}); err != nil {
		t.Fatal(err)
	}
	lines := rec.messages("plugin failed, using the policy's fallback")
	if len(lines) != 1 || recordSize(lines[0]) > max+1<<10 {
		t.Fatalf("logged %d lines; want one of at most %d bytes", len(lines), max+1<<10)
	}
}

// TestLimits_LogRate: a guest logging in a loop gets at most its rate
// (default 100 lines and 256 KiB a second, a second's worth of burst) into
// the logger, plus a summary of what was dropped.
func TestLimits_LogRate(t *testing.T) {
	for _, tt := range []struct {
		name      string
		m         abi.Manifest
		lines     uint64
		size      uint64
		lineRate  float64
		byteRate  float64
		wantLines bool // the line rate binds, not the byte rate
	}{
		{name: "lines", lines: 5000, size: 64, lineRate: abi.DefaultLogLinesPerSecond, byteRate: abi.DefaultLogBytesPerSecond},
		{name: "bytes", lines: 500, size: 4096, lineRate: abi.DefaultLogLinesPerSecond, byteRate: abi.DefaultLogBytesPerSecond},
		{name: "manifest", m: abi.Manifest{LogLinesPerSecond: 20, LogBytesPerSecond: 1 << 20}, lines: 1000, size: 8, lineRate: 20, byteRate: 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &logSink{}
			h := newHost(t, host.WithLogger(slog.New(rec)))
			loadAbuse(t, h, "abuse", tt.m)
			start := time.Now()
			if _, err := h.Call(context.Background(), "abuse", "log_loop", u64s(tt.lines, tt.size)); err != nil {
				t.Fatal(err)
			}
			secs := 1 + time.Since(start).Seconds()
			var n, bytes int
			rec.mu.Lock()
			for _, r := range rec.recs {
				if strings.HasPrefix(r.Message, "xxxxxxxx") {
					n++
					bytes += len(r.Message)
				}
			}
			rec.mu.Unlock()
			if float64(n) > tt.lineRate*secs || float64(bytes) > tt.byteRate*secs+float64(tt.size) {
				t.Fatalf("%d lines, %d bytes logged in %.2fs; over %v lines and %v bytes a second", n, bytes, secs-1, tt.lineRate, tt.byteRate)
			}
			sums := rec.messages("guest log lines suppressed over the plugin's log rate")
			if len(sums) == 0 || len(sums) > int(secs)+1 {
				t.Fatalf("%d summaries in %.2fs", len(sums), secs-1)
			}
			var dropped int64
			for _, s := range sums {
				dropped += attr(s, "lines").Int64()
			}
			// Lines dropped after the summary wait for the next one.
			if dropped == 0 || int(dropped)+n > int(tt.lines) {
				t.Fatalf("%d lines logged and %d reported dropped, of %d", n, dropped, tt.lines)
			}
		})
	}
}

// TestLimits_HostWarningsRateLimited: a guest repeating a refused host
// call gets its code every time, but the host logs at most 10 warnings a
// second for the plugin and a summary of the rest at most every second.
func TestLimits_HostWarningsRateLimited(t *testing.T) {
	rec := &logSink{}
	h := newHost(t, host.WithLogger(slog.New(rec)))
	loadAbuse(t, h, "abuse", abi.Manifest{})
	d := &memDurable{state: map[string][]byte{}}
	start := time.Now()
	ok, rc := loop(t, h, "abuse", "state_loop", d, 100, abi.DefaultMaxStateValue+8, 0)
	secs := 1 + time.Since(start).Seconds()
	if ok != 0 || rc != uint64(abi.HostTooLarge) {
		t.Fatalf("%d oversized values accepted, last code %d", ok, rc)
	}
	n := len(rec.messages("state_set refused"))
	if n == 0 || float64(n) > 10*secs {
		t.Fatalf("%d warnings for 100 refusals in %.2fs", n, secs-1)
	}
	sums := rec.messages("host function warnings suppressed")
	var dropped int64
	for _, s := range sums {
		dropped += attr(s, "lines").Int64()
	}
	if len(sums) == 0 || float64(len(sums)) > secs+1 || dropped == 0 || n+int(dropped) > 100 {
		t.Fatalf("%d summaries of %d suppressed warnings, %d logged", len(sums), dropped, n)
	}
}
