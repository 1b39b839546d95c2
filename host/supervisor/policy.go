package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// PolicyOf returns the resilience policy a plugin's manifest asks for: the
// named preset, or def when the manifest names none, with the manifest's
// inline "policy" section laid over it (keys it sets replace the preset's,
// the others stay). Unknown keys are errors, and the result must validate.
func PolicyOf(m plugins.Manifest, def resilience.Policy) (resilience.Policy, error) {
	return policyOf(m.Preset, m.PolicyYAML, def)
}

// ValidatePolicy checks a sidecar's preset and policy section the way
// PolicyOf reads them. It fits plugins.WithPolicyValidator, so that a bad
// policy is reported as a broken sidecar when the file is read.
func ValidatePolicy(preset string, raw []byte) error {
	_, err := policyOf(preset, raw, resilience.Policy{})
	return err
}

func policyOf(preset string, raw []byte, def resilience.Policy) (resilience.Policy, error) {
	p := def
	if preset != "" {
		var err error
		if p, err = resilience.Preset(preset); err != nil {
			return resilience.Policy{}, err
		}
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		d := yaml.NewDecoder(bytes.NewReader(raw))
		d.KnownFields(true)
		if err := d.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
			return resilience.Policy{}, fmt.Errorf("policy: %w", flatten(err))
		}
	}
	if err := p.Validate(); err != nil {
		return resilience.Policy{}, err
	}
	return p, nil
}

var lineRE = regexp.MustCompile(`^line \d+: `)

// flatten turns yaml's multi-line type errors into one line, without the
// line numbers, which count from the policy section rather than the file
// (the registry names the section's line).
func flatten(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = lineRE.ReplaceAllString(m, "")
	}
	return errors.New(strings.Join(msgs, "; "))
}
