package fuel

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// HostModule instantiates, in r, the host module that instrumented modules
// import (HostModuleName with the function RefillName). Instantiate it once
// per runtime, before any instrumented module. A refused refill (see Refill)
// panics with its error, which wazero turns into a trap whose error wraps
// it: errors.Is(err, ErrBudgetExhausted) or context.DeadlineExceeded holds
// for the error returned by the guest call.
func HostModule(ctx context.Context, r wazero.Runtime) (api.Module, error) {
	return r.NewHostModuleBuilder(HostModuleName).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(refillStack), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).
		WithParameterNames("counter").
		WithResultNames("counter").
		Export(RefillName).
		Instantiate(ctx)
}

// refillStack adapts Refill to wazero's stack calling convention.
func refillStack(ctx context.Context, stack []uint64) {
	next, err := Refill(ctx, int64(stack[0]))
	if err != nil {
		panic(err)
	}
	stack[0] = uint64(next)
}
