;; one is a bulkhead node whose `run` export always returns "answer-1": with its
;; sibling fixtures it tells which version of a plugin served a call.
;;
;; Build: wat2wasm one.wat -o one.wasm
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "answer-1")
  (func (export "run") (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (i64.load (i32.const 0)))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0)))
