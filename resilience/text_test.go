package resilience_test

import (
	"encoding/json"
	"testing"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// Stats and ComponentStatus read back what they write, so an API client
// can decode them typed.
func TestStateAndStatus_TextRoundTrip(t *testing.T) {
	for _, s := range []resilience.State{resilience.Closed, resilience.Open, resilience.HalfOpen} {
		b, err := json.Marshal(resilience.Stats{Name: "p", State: s, Calls: 3})
		if err != nil {
			t.Fatal(err)
		}
		var got resilience.Stats
		if err := json.Unmarshal(b, &got); err != nil || got.State != s || got.Calls != 3 {
			t.Errorf("%s: %s -> %+v, %v", s, b, got, err)
		}
	}
	for _, s := range []resilience.Status{resilience.StatusUnknown, resilience.Healthy, resilience.Degraded, resilience.Unhealthy} {
		b, err := json.Marshal(resilience.ComponentStatus{Name: "c", Status: s})
		if err != nil {
			t.Fatal(err)
		}
		var got resilience.ComponentStatus
		if err := json.Unmarshal(b, &got); err != nil || got.Status != s {
			t.Errorf("%s: %s -> %+v, %v", s, b, got, err)
		}
	}
	var st resilience.State
	if err := json.Unmarshal([]byte(`"ajar"`), &st); err == nil {
		t.Error(`state "ajar" accepted`)
	}
	var hs resilience.Status
	if err := json.Unmarshal([]byte(`"fine"`), &hs); err == nil {
		t.Error(`status "fine" accepted`)
	}
}
