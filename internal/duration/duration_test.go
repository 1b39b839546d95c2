package duration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/internal/duration"
	"github.com/bulkhead-run/bulkhead/resilience"
)

type holder struct {
	D duration.Duration `json:"d" yaml:"d"`
}

func TestDuration_Decode(t *testing.T) {
	tests := []struct {
		name     string
		json     string // the value of "d" in a JSON object
		yaml     string // the value of d in a YAML mapping
		want     time.Duration
		wantErr  string
		jsonOnly bool
	}{
		{name: "go duration", json: `"1m30s"`, yaml: `1m30s`, want: 90 * time.Second},
		{name: "spaces", json: `" 250ms "`, yaml: `" 250ms "`, want: 250 * time.Millisecond},
		{name: "empty is zero", json: `""`, yaml: `""`, want: 0},
		{name: "bare zero", json: `0`, yaml: `0`, want: 0},
		{name: "negative", json: `"-2s"`, yaml: `-2s`, want: -2 * time.Second},
		{name: "bare number", json: `250`, yaml: `250`, wantErr: `invalid duration "250"`},
		{name: "no unit", json: `"30"`, yaml: `"30"`, wantErr: `invalid duration "30"`},
		{name: "word", json: `"soon"`, yaml: `soon`, wantErr: `invalid duration "soon"`},
		{name: "object", json: `{}`, yaml: `{}`, wantErr: "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/json", func(t *testing.T) {
			h := holder{D: 7}
			err := json.Unmarshal([]byte(`{"d":`+tt.json+`}`), &h)
			check(t, err, h.D, tt.want, tt.wantErr)
		})
		t.Run(tt.name+"/yaml", func(t *testing.T) {
			h := holder{D: 7}
			err := yaml.Unmarshal([]byte("d: "+tt.yaml+"\n"), &h)
			check(t, err, h.D, tt.want, tt.wantErr)
		})
	}
}

func check(t *testing.T, err error, got duration.Duration, want time.Duration, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q (value %v)", err, wantErr, got)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.D() != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// null (JSON) and a missing value (YAML) leave what was there: a default
// filled in before decoding survives.
func TestDuration_NullKeeps(t *testing.T) {
	h := holder{D: duration.Duration(time.Second)}
	if err := json.Unmarshal([]byte(`{"d":null}`), &h); err != nil || h.D.D() != time.Second {
		t.Errorf("json null: %v, %v", h.D, err)
	}
	if err := yaml.Unmarshal([]byte("d:\n"), &h); err != nil || h.D.D() != time.Second {
		t.Errorf("yaml null: %v, %v", h.D, err)
	}
}

func TestDuration_RoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, 1500 * time.Millisecond, -time.Minute, 100 * time.Hour} {
		in := holder{D: duration.Duration(d)}
		j, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON, fromYAML holder
		if err := json.Unmarshal(j, &fromJSON); err != nil {
			t.Fatalf("%s: %v", j, err)
		}
		if err := yaml.Unmarshal(y, &fromYAML); err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		if fromJSON != in || fromYAML != in {
			t.Errorf("%v: json %s -> %v, yaml %q -> %v", d, j, fromJSON.D, y, fromYAML.D)
		}
		if want := `{"d":"` + d.String() + `"}`; string(j) != want {
			t.Errorf("json %s, want %s", j, want)
		}
	}
}

// A manifest's timeout and a policy's attempt timeout are one type and read
// the same text the same way, in YAML and in JSON.
func TestDuration_ManifestAndPolicyAgree(t *testing.T) {
	var _ abi.Duration = resilience.Duration(0) // one type, two names
	for _, v := range []string{`""`, `"0"`, `"45s"`, `"later"`} {
		var m abi.Manifest
		var p resilience.Policy
		mErr := json.Unmarshal([]byte(`{"timeout":`+v+`}`), &m)
		pErr := json.Unmarshal([]byte(`{"attempt_timeout":`+v+`}`), &p)
		if (mErr == nil) != (pErr == nil) || m.Timeout != p.AttemptTimeout {
			t.Errorf("json %s: manifest %v (%v), policy %v (%v)", v, m.Timeout, mErr, p.AttemptTimeout, pErr)
		}
		mErr = yaml.Unmarshal([]byte("timeout: "+v+"\n"), &m)
		pErr = yaml.Unmarshal([]byte("attempt_timeout: "+v+"\n"), &p)
		if (mErr == nil) != (pErr == nil) || m.Timeout != p.AttemptTimeout {
			t.Errorf("yaml %s: manifest %v (%v), policy %v (%v)", v, m.Timeout, mErr, p.AttemptTimeout, pErr)
		}
	}
}
