;; slow is a bulkhead node whose `run` export counts to two hundred million before
;; it returns "answer-s" (about 0.2 s under the host's deadline checks): a
;; call that is still in flight when its plugin is removed.
;;
;; Build: wat2wasm slow.wat -o slow.wasm
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "answer-s")
  (func (export "run") (result i32)
    (local $i i32) (local $h i64)
    (loop $count
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $count (i32.lt_u (local.get $i) (i32.const 200000000))))
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (i64.load (i32.const 0)))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0)))
