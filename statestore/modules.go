package statestore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// ErrModuleHash: the module bytes a store holds do not hash to the version
// they are stored under (they were changed in the database). The bytes are
// not returned.
var ErrModuleHash = errors.New("statestore: module bytes do not match their SHA-256")

// Module is one plugin version as hosts share it: the Wasm bytes, stored
// once by their SHA-256 (the plugin version), and the manifest the plugin
// runs that version with.
type Module struct {
	Plugin string
	// Version is the hex SHA-256 of Wasm. PutModule fills it in.
	Version  string
	Wasm     []byte
	Manifest []byte
}

// Modules shares plugin modules between the hosts of a store, so a host
// can run a version it was never given as a file.
type Modules interface {
	// PutModule durably stores m.Wasm under its SHA-256 (once: storing the
	// same bytes again writes nothing) and m.Manifest as the plugin's
	// manifest of that version (replacing an earlier one), and returns the
	// version. A non-empty m.Version must be the SHA-256 of m.Wasm.
	// Errors: ErrInvalid, ErrClosed, ErrUnavailable.
	PutModule(ctx context.Context, m Module) (string, error)
	// GetModule returns the plugin's module of version (the full hex
	// SHA-256), after checking that its bytes hash to version. Errors:
	// ErrNotFound (no such version of the plugin), ErrModuleHash,
	// ErrInvalid, ErrClosed, ErrUnavailable.
	GetModule(ctx context.Context, plugin, version string) (Module, error)
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckVersion returns an ErrInvalid error unless v is a full lower-case
// hex SHA-256.
func CheckVersion(v string) error {
	if !hexSHA256.MatchString(v) {
		return fmt.Errorf("%w: version %q is not a hex SHA-256", ErrInvalid, v)
	}
	return nil
}

// CheckModule verifies that m.Wasm hashes to m.Version; the error matches
// ErrModuleHash and names both hashes.
func CheckModule(m Module) error {
	if got := HashInput(m.Wasm); got != m.Version {
		return fmt.Errorf("%w: plugin %s version %s holds bytes whose SHA-256 is %s", ErrModuleHash, m.Plugin, m.Version, got)
	}
	return nil
}

// PrepareModule validates m for PutModule and returns its version: the
// plugin name must be valid, Wasm not empty and a non-empty Version the
// SHA-256 of Wasm. Errors match ErrInvalid.
func PrepareModule(m Module) (string, error) {
	if err := CheckID("plugin", m.Plugin); err != nil {
		return "", err
	}
	if len(m.Wasm) == 0 {
		return "", fmt.Errorf("%w: empty module of plugin %s", ErrInvalid, m.Plugin)
	}
	v := HashInput(m.Wasm)
	if m.Version != "" && m.Version != v {
		return "", fmt.Errorf("%w: plugin %s: version %s is not the SHA-256 of the bytes (%s)", ErrInvalid, m.Plugin, m.Version, v)
	}
	return v, nil
}
