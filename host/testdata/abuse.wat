;; abuse is a guest that tries to exhaust the host through state, errors,
;; logs and checkpoints; the loops take little-endian u64 arguments in
;; their input (count, size[, first]).
;;
;;   state_loop:      state_set of count keys, numbered from first and
;;                    spelled one letter a..p per 4 bits ("aaaaaaaa",
;;                    "baaaaaaa", …), with values of size bytes; it goes on
;;                    after a refusal and outputs (writes accepted, last
;;                    non-zero code) as two u64.
;;   checkpoint_loop: checkpoint_save of count checkpoints of size bytes;
;;                    output as for state_loop.
;;   log_loop:        log_info of count lines of size bytes ('x'; size a
;;                    multiple of 8).
;;   big_error:       fails with its whole input as the error message.
;;
;; Build: wat2wasm abuse.wat -o abuse.wasm
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "bulkhead:host/v1" "state_set" (func $state_set (param i64 i64) (result i32)))
  (import "bulkhead:host/v1" "checkpoint_save" (func $checkpoint_save (param i64) (result i32)))
  (memory (export "memory") 1)

  ;; output (ok, rc) as two u64
  (func $result (param $ok i64) (param $rc i64)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $h) (local.get $ok))
    (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (local.get $rc))
    (call $output_set (local.get $h) (i64.const 16)))

  ;; write key i into the 8-byte block k: one letter a..p per 4 bits
  (func $key (param $k i64) (param $i i64)
    (local $j i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $j) (i64.const 8)))
      (call $store_u8 (i64.add (local.get $k) (local.get $j))
        (i32.add (i32.const 97)
          (i32.wrap_i64 (i64.and (i64.shr_u (local.get $i) (i64.mul (local.get $j) (i64.const 4))) (i64.const 15)))))
      (local.set $j (i64.add (local.get $j) (i64.const 1)))
      (br $next))))

  (func (export "state_loop") (result i32)
    (local $n i64) (local $k i64) (local $v i64) (local $i i64) (local $ok i64) (local $rc i32) (local $last i64)
    (local.set $i (call $input_load_u64 (i64.const 16)))
    (local.set $n (i64.add (local.get $i) (call $input_load_u64 (i64.const 0))))
    (local.set $k (call $alloc (i64.const 8)))
    (local.set $v (call $alloc (call $input_load_u64 (i64.const 8))))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $key (local.get $k) (local.get $i))
      (local.set $rc (call $state_set (local.get $k) (local.get $v)))
      (if (i32.eqz (local.get $rc))
        (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
        (else (local.set $last (i64.extend_i32_u (local.get $rc)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $result (local.get $ok) (local.get $last))
    (i32.const 0))

  (func (export "checkpoint_loop") (result i32)
    (local $n i64) (local $v i64) (local $i i64) (local $ok i64) (local $rc i32) (local $last i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (local.set $v (call $alloc (call $input_load_u64 (i64.const 8))))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $rc (call $checkpoint_save (local.get $v)))
      (if (i32.eqz (local.get $rc))
        (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
        (else (local.set $last (i64.extend_i32_u (local.get $rc)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $result (local.get $ok) (local.get $last))
    (i32.const 0))

  (func (export "log_loop") (result i32)
    (local $n i64) (local $size i64) (local $h i64) (local $i i64) (local $j i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (local.set $size (call $input_load_u64 (i64.const 8)))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $h (call $alloc (local.get $size)))
      (local.set $j (i64.const 0))
      (block $filled (loop $fill
        (br_if $filled (i64.ge_u (local.get $j) (local.get $size)))
        (call $store_u64 (i64.add (local.get $h) (local.get $j)) (i64.const 0x7878787878787878))
        (local.set $j (i64.add (local.get $j) (i64.const 8)))
        (br $fill)))
      (call $log_info (local.get $h))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (i32.const 0))

  (func (export "big_error") (result i32)
    (call $error_set (call $input_offset))
    (i32.const 1)))
