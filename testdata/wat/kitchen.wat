;; kitchen.wat: bulkhead's WebAssembly-text conformance fixture, written
;; against the raw ABI with no SDK (see docs/write-a-node.md).
;;
;; Build (from this directory; `make -C testdata wat` does it):
;;
;;   wat2wasm kitchen.wat -o kitchen.wasm
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "log_debug" (func $log_debug (param i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "log_warn" (func $log_warn (param i64)))
  (import "extism:host/env" "log_error" (func $log_error (param i64)))
  (import "bulkhead:host/v1" "invocation" (func $invocation (result i64)))
  (import "bulkhead:host/v1" "retry_after" (func $retry_after (param i64)))

  ;; Linear memory: constants below 1024, parsed input at 1024..5119,
  ;; formatted output from 8192.
  (memory 1)
  (data (i32.const 0) "count")                                   ;; 5 bytes
  (data (i32.const 16) "rate limited")                           ;; 12 bytes
  (data (i32.const 32) "config key is not set")                  ;; 21 bytes
  (data (i32.const 64) "decode input: want {\"a\":int,\"b\":int}") ;; 36 bytes
  (data (i32.const 112) "input is not a number of milliseconds") ;; 37 bytes
  (global $pos (mut i32) (i32.const 0))
  (global $end (mut i32) (i32.const 0))

  ;; $input_block copies the input into a new Extism block, 8 bytes a call.
  (func $input_block (result i64)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $h (call $alloc (local.get $n)))
    (block $done
      (loop $words
        (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
        (call $store_u64 (i64.add (local.get $h) (local.get $i)) (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $words)))
    (block $done
      (loop $bytes
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $bytes)))
    (local.get $h))

  ;; $input_to_mem copies the input (at most 4096 bytes) to memory at 1024
  ;; and sets $pos and $end around it; it returns 0 when the input is too big.
  (func $input_to_mem (result i32)
    (local $n i32) (local $i i32)
    (if (i64.gt_u (call $input_length) (i64.const 4096)) (then (return (i32.const 0))))
    (local.set $n (i32.wrap_i64 (call $input_length)))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (i32.const 1024) (local.get $i)) (call $input_load_u8 (i64.extend_i32_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (global.set $pos (i32.const 1024))
    (global.set $end (i32.add (i32.const 1024) (local.get $n)))
    (i32.const 1))

  ;; $block_to_mem copies block $h (at most 4096 bytes) to memory at 1024
  ;; and sets $pos and $end around it.
  (func $block_to_mem (param $h i64)
    (local $n i32) (local $i i32)
    (local.set $n (i32.wrap_i64 (call $length (local.get $h))))
    (if (i32.gt_u (local.get $n) (i32.const 4096)) (then (local.set $n (i32.const 4096))))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (i32.const 1024) (local.get $i))
          (call $load_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (global.set $pos (i32.const 1024))
    (global.set $end (i32.add (i32.const 1024) (local.get $n))))

  ;; $mem_block copies memory [$p, $p+$n) into a new Extism block.
  (func $mem_block (param $p i32) (param $n i32) (result i64)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (local.get $h))

  ;; $peek returns the byte at $pos, or -1 at the end.
  (func $peek (result i32)
    (if (result i32) (i32.ge_u (global.get $pos) (global.get $end))
      (then (i32.const -1))
      (else (i32.load8_u (global.get $pos)))))

  (func $skip_ws
    (block $done
      (loop $ws
        (br_if $done (i32.eqz (call $is_ws (call $peek))))
        (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
        (br $ws))))

  (func $is_ws (param $c i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
            (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13)))))

  ;; $expect consumes byte $c or returns 0.
  (func $expect (param $c i32) (result i32)
    (if (i32.ne (call $peek) (local.get $c)) (then (return (i32.const 0))))
    (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
    (i32.const 1))

  ;; $parse_int reads an optionally negative decimal at $pos into $value
  ;; and returns 1, or returns 0 when there is no digit.
  (global $value (mut i64) (i64.const 0))
  (func $parse_int (result i32)
    (local $neg i32) (local $v i64) (local $digits i32) (local $c i32)
    (if (call $expect (i32.const 45)) (then (local.set $neg (i32.const 1))))
    (block $done
      (loop $digit
        (local.set $c (i32.sub (call $peek) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
        (br $digit)))
    (if (local.get $neg) (then (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    (global.set $value (local.get $v))
    (i32.ne (local.get $digits) (i32.const 0)))

  ;; $fmt_int writes $v in decimal at 8192 + $at and returns the end offset.
  (func $fmt_int (param $v i64) (param $at i32) (result i32)
    (local $p i32) (local $q i32) (local $neg i32) (local $t i32)
    (local.set $p (i32.add (i32.const 8192) (local.get $at)))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (i32.store8 (local.get $p) (i32.const 45))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    ;; digits in reverse at 9000.., then copied forward
    (local.set $q (i32.const 9000))
    (loop $digit
      (i32.store8 (local.get $q) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (loop $copy
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.load8_u (local.get $q)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $copy (i32.gt_u (local.get $q) (i32.const 9000))))
    (i32.sub (local.get $p) (i32.const 8192)))

  (func $fail (param $code i32) (param $p i32) (param $n i32) (result i32)
    (call $error_set (call $mem_block (local.get $p) (local.get $n)))
    (local.get $code))

  (func (export "echo") (result i32)
    (call $output_set (call $input_block) (call $input_length))
    (i32.const 0))

  ;; json: {"a":int,"b":int} -> {"sum":a+b}; anything else fails permanently.
  (func (export "json") (result i32)
    (local $a i64) (local $b i64) (local $seen i32) (local $key i32) (local $n i32)
    (block $bad
      (br_if $bad (i32.eqz (call $input_to_mem)))
      (call $skip_ws)
      (br_if $bad (i32.eqz (call $expect (i32.const 123)))) ;; {
      (loop $member
        (call $skip_ws)
        (br_if $bad (i32.eqz (call $expect (i32.const 34)))) ;; "
        (local.set $key (call $peek))
        (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
        (br_if $bad (i32.eqz (call $expect (i32.const 34))))
        (call $skip_ws)
        (br_if $bad (i32.eqz (call $expect (i32.const 58)))) ;; :
        (call $skip_ws)
        (br_if $bad (i32.eqz (call $parse_int)))
        (if (i32.eq (local.get $key) (i32.const 97)) ;; a
          (then (local.set $a (global.get $value)) (local.set $seen (i32.or (local.get $seen) (i32.const 1)))))
        (if (i32.eq (local.get $key) (i32.const 98)) ;; b
          (then (local.set $b (global.get $value)) (local.set $seen (i32.or (local.get $seen) (i32.const 2)))))
        (call $skip_ws)
        (br_if $member (call $expect (i32.const 44)))) ;; ,
      (br_if $bad (i32.eqz (call $expect (i32.const 125)))) ;; }
      (call $skip_ws)
      (br_if $bad (i32.ne (global.get $pos) (global.get $end)))
      (br_if $bad (i32.ne (local.get $seen) (i32.const 3)))
      ;; {"sum":N}
      (i64.store (i32.const 8192) (i64.const 0x3a226d7573227b)) ;; {"sum":
      (local.set $n (call $fmt_int (i64.add (local.get $a) (local.get $b)) (i32.const 7)))
      (i32.store8 (i32.add (i32.const 8192) (local.get $n)) (i32.const 125))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (call $output_set (call $mem_block (i32.const 8192) (local.get $n)) (i64.extend_i32_u (local.get $n)))
      (return (i32.const 0)))
    (call $fail (i32.const 2) (i32.const 64) (i32.const 36)))

  (func (export "config") (result i32)
    (local $k i64) (local $v i64)
    (local.set $k (call $input_block))
    (local.set $v (call $config_get (local.get $k)))
    (call $free (local.get $k))
    (if (i64.eqz (local.get $v)) (then (return (call $fail (i32.const 2) (i32.const 32) (i32.const 21)))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0))

  (func (export "var_incr") (result i32)
    (local $v i64) (local $n i32)
    (global.set $value (i64.const 0))
    (local.set $v (call $var_get (call $mem_block (i32.const 0) (i32.const 5)))) ;; the host frees the key
    (if (i64.ne (local.get $v) (i64.const 0))
      (then
        (call $block_to_mem (local.get $v))
        (call $free (local.get $v))
        (drop (call $parse_int))))
    (local.set $n (call $fmt_int (i64.add (global.get $value) (i64.const 1)) (i32.const 0)))
    (call $var_set (call $mem_block (i32.const 0) (i32.const 5)) (call $mem_block (i32.const 8192) (local.get $n)))
    (call $output_set (call $mem_block (i32.const 8192) (local.get $n)) (i64.extend_i32_u (local.get $n)))
    (i32.const 0))

  ;; log: the input at debug, info, warn and error; the host frees each block.
  (func (export "log") (result i32)
    (call $log_debug (call $input_block))
    (call $log_info (call $input_block))
    (call $log_warn (call $input_block))
    (call $log_error (call $input_block))
    (i32.const 0))

  (func (export "fail") (result i32)
    (call $error_set (call $input_block))
    (i32.const 1))

  (func (export "fail_permanent") (result i32)
    (call $error_set (call $input_block))
    (i32.const 2))

  (func (export "trap") (result i32)
    unreachable)

  ;; invocation: the host's JSON, passed through as the output.
  (func (export "invocation") (result i32)
    (local $h i64)
    (local.set $h (call $invocation))
    (call $output_set (local.get $h) (call $length (local.get $h)))
    (i32.const 0))

  (func (export "retry_after") (result i32)
    (block $bad
      (br_if $bad (i32.eqz (call $input_to_mem)))
      (br_if $bad (i32.eqz (call $parse_int)))
      (br_if $bad (i32.ne (global.get $pos) (global.get $end)))
      (call $retry_after (global.get $value))
      (return (call $fail (i32.const 1) (i32.const 16) (i32.const 12))))
    (call $fail (i32.const 2) (i32.const 112) (i32.const 37))))
