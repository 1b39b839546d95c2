package abi_test

import (
	"encoding/json"
	"fmt"

	"github.com/bulkhead-run/bulkhead/abi"
)

// A manifest reads from a plugin's sidecar or from JSON; sizes and
// durations are written the way people write them, and a zero field means
// its default.
func ExampleManifest() {
	var m abi.Manifest
	err := json.Unmarshal([]byte(`{"memory": "32MiB", "timeout": "2s", "allowed_hosts": ["api.example.com"]}`), &m)
	fmt.Println(int64(m.Memory), m.Timeout, m.AllowedHosts, err, m.Validate())

	err = json.Unmarshal([]byte(`{"timeout": 30}`), &m) // a bare number has no unit
	fmt.Println(err)
	// Output:
	// 33554432 2s [api.example.com] <nil> <nil>
	// invalid duration "30" (want a Go duration such as "250ms" or "1m30s")
}

// A guest's return code tells the host whether a failure is worth a retry.
func ExampleCode_Retryable() {
	for _, c := range []abi.Code{abi.CodeOK, abi.CodeRetryable, abi.Code(7), abi.CodePermanent} {
		fmt.Println(c, c.Retryable())
	}
	// Output:
	// ok false
	// retryable failure (code 1) true
	// retryable failure (code 7) true
	// permanent failure false
}
