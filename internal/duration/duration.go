// Package duration holds the one duration type of bulkhead's configuration,
// exported as abi.Duration (plugin manifests) and resilience.Duration
// (policies), which are aliases of Duration: the same type, parsed the same
// way in YAML and JSON.
package duration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("250ms", "1m30s") in YAML (through encoding.TextUnmarshaler) and JSON.
//
// The empty string and a bare 0 read as zero, which in every bulkhead
// configuration means "not set: the documented default applies"; JSON null
// leaves the value as it was. Any other bare number is refused, because its
// unit would be a guess. The type checks syntax only: whether a negative or
// zero value is allowed is up to the Validate method of the struct that
// holds it. It always writes as a string, so a written value reads back
// equal.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "" || s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want a Go duration such as \"250ms\" or \"1m30s\")", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	if string(b) == "null" {
		return nil
	}
	return d.UnmarshalText(b)
}
