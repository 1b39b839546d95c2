;; outcomes has one export per way a plugin call can end, for the tests of
;; the call endpoint's HTTP status mapping: `ok` returns its input (code 0),
;; `fail_permanent` fails with the permanent code 2 and its input as the
;; message, `fail` fails with the retryable code 1, `trap` hits
;; `unreachable`, and `spin` loops until the host stops it.
;;
;; Build: wat2wasm outcomes.wat -o outcomes.wasm
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory (export "memory") 1)

  ;; a new block holding a copy of the input, a byte at a time
  (func $input_block (result i64)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $h (call $alloc (local.get $n)))
    (block $done (loop $bytes
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $bytes)))
    (local.get $h))

  (func (export "ok") (result i32)
    (call $output_set (call $input_block) (call $input_length))
    (i32.const 0))

  (func (export "fail_permanent") (result i32)
    (call $error_set (call $input_block))
    (i32.const 2))

  (func (export "fail") (result i32)
    (call $error_set (call $input_block))
    (i32.const 1))

  (func (export "trap") (result i32)
    (unreachable))

  (func (export "spin") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
