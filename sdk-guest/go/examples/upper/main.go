// Command upper is an example bulkhead node: it upper-cases its input.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
package main

import (
	"bytes"

	bulkhead "github.com/bulkhead-run/bulkhead/sdk-guest/go"
)

//go:wasmexport run
func run() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		if len(in) == 0 {
			return nil, bulkhead.Permanent(errEmpty)
		}
		bulkhead.Logf(bulkhead.LevelInfo, "upper-casing %d bytes", len(in))
		return bytes.ToUpper(in), nil
	})
}

var errEmpty = bulkheadError("empty input")

type bulkheadError string

func (e bulkheadError) Error() string { return string(e) }

func main() {}
