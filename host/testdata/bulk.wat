;; bulk drives bulkhead's bulk transfer host functions directly, in and out
;; of bounds: echo copies its input into guest memory and back out in two
;; calls; the others hand the host addresses outside the guest's memory
;; (one 64 KiB page) or a handle that names no block.
;;
;; Build: wat2wasm bulk.wat -o bulk.wasm
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "bulkhead:host/v1" "input_read" (func $input_read (param i64) (result i64)))
  (import "bulkhead:host/v1" "block_read" (func $block_read (param i64 i64) (result i64)))
  (import "bulkhead:host/v1" "block_write" (func $block_write (param i64 i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "echo") (result i32)
    (local $n i64)
    (local.set $n (call $input_read (i64.const 16)))
    (call $output_set (call $block_write (i64.const 16) (local.get $n)) (local.get $n))
    (i32.const 0))
  (func (export "input_oob") (result i32)
    (drop (call $input_read (i64.const 65530)))
    (i32.const 0))
  (func (export "input_far") (result i32)
    (drop (call $input_read (i64.const 0x100000000)))
    (i32.const 0))
  (func (export "write_oob") (result i32)
    (drop (call $block_write (i64.const 65530) (i64.const 100)))
    (i32.const 0))
  (func (export "read_no_block") (result i32)
    ;; A handle that names no block copies nothing and returns 0.
    (i32.wrap_i64 (call $block_read (i64.const 12345) (i64.const 0)))))
