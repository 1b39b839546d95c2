// Package abi is the contract between the bulkhead host and its guests: the
// names a module imports and exports, the signatures of bulkhead's host
// functions, the return codes of an export and the JSON shapes that cross the
// boundary. It holds constants, value types and pure functions only.
//
// # Modules
//
// A node is an Extism-ABI module. Data crosses the boundary through the
// Extism kernel memory: the guest reads its input, allocates blocks, and hands
// the host offsets ("handles", i64) to blocks that hold bytes. The imports of
// module "extism:host/env" (ExtismModule) that bulkhead supports are those of
// the Extism kernel and host, listed by ExtismFunctions:
//
//	input_length() -> i64                 length of the call's input
//	input_load_u8(i i64) -> i32           input byte i
//	input_load_u64(i i64) -> i64          input bytes i..i+8, little endian
//	alloc(n i64) -> i64                   allocate a block, return its handle
//	free(h i64)                           free a block
//	length(h i64) -> i64                  length of a block (0 for a bad handle)
//	load_u8(h i64) -> i32, load_u64(h i64) -> i64
//	store_u8(h i64, v i32), store_u64(h i64, v i64)
//	output_set(h i64, n i64)              the call's output is block h
//	error_set(h i64)                      the call's error message is block h
//	config_get(key i64) -> i64            handle to a config value, or 0
//	var_get(key i64) -> i64, var_set(key i64, value i64)
//	                                      per-instance variables (0 value deletes)
//	http_request(req i64, body i64) -> i64, http_status_code() -> i32
//	                                      only to hosts the manifest allows
//	log_trace/log_debug/log_info/log_warn/log_error(h i64)
//	get_log_level() -> i32
//
// bulkhead's own functions live in module "bulkhead:host/v1" (HostModule);
// HostFunctions lists their signatures:
//
//	invocation() -> i64                   handle to JSON Invocation
//	retry_after(ms i64)                   delay hint for the next attempt
//	checkpoint_save(h i64) -> i32         0 once the bytes are durable
//	checkpoint_load() -> i64              newest checkpoint of this node, or 0
//	state_get(key i64) -> i64             plugin-scoped durable state, or 0
//	state_set(key i64, value i64) -> i32
//	state_delete(key i64) -> i32
//	progress(h i64)                       JSON Progress of this node
//
// checkpoint_save, state_set and state_delete return HostOK (0), HostFailed
// (1: the store failed), HostUnavailable (3: the call has no durable store,
// as under `bulkhead call`), HostTooLarge (4: a checkpoint, key or value
// over the host's limit: the manifest's max_checkpoint, DefaultMaxStateKey,
// DefaultMaxStateValue) or HostQuota (5: state_set only, the plugin's state
// would pass its quota of keys or bytes, state_keys and state_bytes;
// deleting keys frees it). A handle the host cannot resolve (not allocated,
// freed, out of range) makes the calling export trap; it never harms the
// host or other calls.
//
// # Exports and return codes
//
// An export takes no parameters and returns an i32 Code: 0 (CodeOK) for
// success, 2 (CodePermanent) for a permanent failure such as bad input, which
// is never retried and never counts against a circuit breaker, and any other
// value for a retryable failure. The failure's message is the block passed to
// error_set; a non-zero code without error_set is still a failure. The host
// calls ExportRun unless told otherwise; ExportDescribe and ExportHealth are
// optional.
//
// # Compatibility
//
// Changing a name, signature, code or JSON shape here changes Version, and
// `go generate ./abi` regenerates the constants of every guest SDK.
package abi
