package xabi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero/api"

	"github.com/bulkhead-run/bulkhead/host/internal/fuel"
)

// fuelFormat names the rewriter's output format in the on-disk cache; bump
// it whenever Instrument's output for the same input changes.
const fuelFormat = "fuel11"

// refillFunc is the host side of the import every metered module has.
var refillFunc = HostFunc{
	Module:  fuel.HostModuleName,
	Name:    fuel.RefillName,
	Params:  []api.ValueType{api.ValueTypeI64},
	Results: []api.ValueType{api.ValueTypeI64},
	Call: func(ctx context.Context, _ Memory, stack []uint64) {
		next, err := fuel.Refill(ctx, int64(stack[0]))
		if err != nil {
			panic(err) // traps the guest; the call's error wraps err
		}
		stack[0] = uint64(next)
	},
}

// instrument meters wasm and bounds its call stack to maxStack bytes (see
// fuel.Options), through an on-disk cache of rewritten modules keyed by the
// input's hash and the bound when dir is set.
func instrument(wasm []byte, dir string, maxStack int64) ([]byte, error) {
	var path string
	if dir != "" {
		sum := sha256.Sum256(wasm)
		path = filepath.Join(dir, fmt.Sprintf("%s-%s-s%d.wasm", fuelFormat, hex.EncodeToString(sum[:]), maxStack))
		if b, err := os.ReadFile(path); err == nil {
			return b, nil
		}
	}
	out, err := fuel.Instrument(wasm, fuel.Options{MaxStack: maxStack})
	if err != nil {
		return nil, err
	}
	if path != "" {
		// Best effort: a cache that cannot be written only costs time.
		if err := os.MkdirAll(dir, 0o755); err == nil {
			tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
			if os.WriteFile(tmp, out, 0o644) == nil {
				_ = os.Rename(tmp, path)
			}
		}
	}
	return out, nil
}
