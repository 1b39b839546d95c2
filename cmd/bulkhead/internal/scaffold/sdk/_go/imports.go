//go:build wasip1

package bulkhead

// Imports of the Extism kernel and host ("extism:host/env").

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env input_load_u64
func extismInputLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env free
func extismFree(h uint64)

//go:wasmimport extism:host/env length
func extismLength(h uint64) uint64

//go:wasmimport extism:host/env load_u8
func extismLoadU8(h uint64) uint32

//go:wasmimport extism:host/env load_u64
func extismLoadU64(h uint64) uint64

//go:wasmimport extism:host/env store_u8
func extismStoreU8(h uint64, v uint32)

//go:wasmimport extism:host/env store_u64
func extismStoreU64(h uint64, v uint64)

//go:wasmimport extism:host/env output_set
func extismOutputSet(h, n uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(h uint64)

//go:wasmimport extism:host/env config_get
func extismConfigGet(key uint64) uint64

//go:wasmimport extism:host/env var_get
func extismVarGet(key uint64) uint64

//go:wasmimport extism:host/env var_set
func extismVarSet(key, value uint64)

//go:wasmimport extism:host/env log_debug
func extismLogDebug(h uint64)

//go:wasmimport extism:host/env log_info
func extismLogInfo(h uint64)

//go:wasmimport extism:host/env log_warn
func extismLogWarn(h uint64)

//go:wasmimport extism:host/env log_error
func extismLogError(h uint64)

//go:wasmimport extism:host/env log_trace
func extismLogTrace(h uint64)

// Imports of bulkhead's own host functions ("bulkhead:host/v1").

//go:wasmimport bulkhead:host/v1 invocation
func hostInvocation() uint64

//go:wasmimport bulkhead:host/v1 retry_after
func hostRetryAfter(ms uint64)

//go:wasmimport bulkhead:host/v1 checkpoint_save
func hostCheckpointSave(h uint64) uint32

//go:wasmimport bulkhead:host/v1 checkpoint_load
func hostCheckpointLoad() uint64

//go:wasmimport bulkhead:host/v1 state_get
func hostStateGet(key uint64) uint64

//go:wasmimport bulkhead:host/v1 state_set
func hostStateSet(key, value uint64) uint32

//go:wasmimport bulkhead:host/v1 state_delete
func hostStateDelete(key uint64) uint32

//go:wasmimport bulkhead:host/v1 progress
func hostProgress(h uint64)

//go:wasmimport extism:host/env http_request
func extismHTTPRequest(req, body uint64) uint64

//go:wasmimport extism:host/env http_status_code
func extismHTTPStatusCode() int32

//go:wasmimport bulkhead:host/v1 input_read
func bulkInputRead(dst uint64) uint64

//go:wasmimport bulkhead:host/v1 block_read
func bulkBlockRead(h, dst uint64) uint64

//go:wasmimport bulkhead:host/v1 block_write
func bulkBlockWrite(src, n uint64) uint64
