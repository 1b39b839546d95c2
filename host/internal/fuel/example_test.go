package fuel_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"

	"github.com/bulkhead-run/bulkhead/host/internal/fuel"
)

// A module is instrumented once when it is loaded; each call then runs with
// its own Meter, which counts the fuel used and stops the guest when its
// budget is spent or its context is done.
func Example() {
	ctx := context.Background()
	wasm, err := os.ReadFile("testdata/fib.wasm") // exports fib(n i64) i64
	if err != nil {
		panic(err)
	}
	metered, err := fuel.Instrument(wasm, fuel.Options{})
	if err != nil {
		panic(err)
	}

	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	if _, err := fuel.HostModule(ctx, r); err != nil {
		panic(err)
	}
	mod, err := r.Instantiate(ctx, metered)
	if err != nil {
		panic(err)
	}
	fib := mod.ExportedFunction("fib")

	m := fuel.NewMeter(1_000_000, 0) // a budget of 10^6 units, default slice
	res, err := fib.Call(fuel.WithMeter(ctx, m), 20)
	fmt.Println(res[0], err, m.Used()) // the same count on every run

	m = fuel.NewMeter(1_000_000, 0)
	_, err = fib.Call(fuel.WithMeter(ctx, m), 40) // needs far more
	fmt.Println(errors.Is(err, fuel.ErrBudgetExhausted))
	// Output:
	// 6765 <nil> 197015
	// true
}
