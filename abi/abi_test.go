package abi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want Size
		bad  bool
	}{
		{give: "64MiB", want: 64 << 20},
		{give: "512KiB", want: 512 << 10},
		{give: "1MB", want: 1e6},
		{give: "4096", want: 4096},
		{give: " 2 GiB ", want: 2 << 30},
		{give: "12B", want: 12},
		{give: "-1", bad: true},
		{give: "lots", bad: true},
		{give: "", bad: true},
		{give: "99999999999GiB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseSize(tt.give)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want error", tt.give, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.give, got, err, tt.want)
			}
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip of %s gave %d, %v", got, back, err)
			}
		})
	}
}

func TestManifest_JSON(t *testing.T) {
	var m Manifest
	in := `{"memory":"32MiB","timeout":"250ms","pool":{"max":4,"idle_timeout":"1m"},"config":{"k":"v"}}`
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.Memory != 32<<20 || m.Timeout.String() != "250ms" || m.Pool.Max != 4 || m.Config["k"] != "v" {
		t.Fatalf("decoded %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"memory":"much"}`), &m); err == nil {
		t.Fatal("want error for a bad size")
	}
}

func TestManifest_ValidateReportsAll(t *testing.T) {
	m := Manifest{Memory: 1024, Timeout: -1, Pool: Pool{Min: 5, Max: 2}}
	err := m.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"memory", "timeout", "pool min"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestManifest_Quotas: the quota, error and log-rate fields decode from
// JSON and refuse negative values and an oversized max_checkpoint.
func TestManifest_Quotas(t *testing.T) {
	var m Manifest
	in := `{"max_error":"16KiB","log_lines_per_second":50,"log_bytes_per_second":"128KiB","max_checkpoint":"1MiB","state_keys":500,"state_bytes":"8MiB"}`
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := Manifest{MaxError: 16 << 10, LogLinesPerSecond: 50, LogBytesPerSecond: 128 << 10, MaxCheckpoint: 1 << 20, StateKeys: 500, StateBytes: 8 << 20}
	if m.MaxError != want.MaxError || m.LogLinesPerSecond != want.LogLinesPerSecond || m.LogBytesPerSecond != want.LogBytesPerSecond ||
		m.MaxCheckpoint != want.MaxCheckpoint || m.StateKeys != want.StateKeys || m.StateBytes != want.StateBytes {
		t.Fatalf("decoded %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Manifest{MaxError: -1, LogLinesPerSecond: -1, LogBytesPerSecond: -1, StateKeys: -1, StateBytes: -1, MaxCheckpoint: MaxCheckpointLimit + 1}
	err := bad.Validate()
	for _, name := range []string{"max_error", "log_lines_per_second", "log_bytes_per_second", "state_keys", "state_bytes", "max_checkpoint"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate = %v; want it to name %s", err, name)
		}
	}
}

func TestCode_Retryable(t *testing.T) {
	for c, want := range map[Code]bool{CodeOK: false, CodePermanent: false, CodeRetryable: true, 7: true, -1: true} {
		if c.Retryable() != want {
			t.Errorf("Code(%d).Retryable() = %v", c, !want)
		}
	}
}

func FuzzDecodeProgress(f *testing.F) {
	f.Add([]byte(`{"done":1,"total":3,"message":"x"}`))
	f.Add([]byte(`{"done":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeProgress(b)
		if err == nil && (p.Done < 0 || p.Total < 0) {
			t.Fatalf("accepted negative progress %+v", p)
		}
	})
}
