;; Call depth: down recurses n deep and returns n; forever recurses without
;; end and without a loop; tail counts n down in n tail calls (constant
;; stack); leave calls early n times, a function that leaves through a
;; branch to its own label or a br_table; ring recurses n deep through a
;; table; pending recurses n deep holding 40 values on the operand stack
;; across each call.
;; Build: wat2wasm --debug-names --enable-tail-call recurse.wat -o recurse.wasm
(module
  (type $i2i (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $ring)
  (func $down (export "down") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)))))))
  (func $forever (export "forever") (param $n i32) (result i32)
    (call $forever (i32.add (local.get $n) (i32.const 1))))
  (func $tail (export "tail") (param $n i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (return_call $tail (i32.sub (local.get $n) (i32.const 1))))
  (func $early (param $n i32) (result i32)
    (block $b (result i32)
      i32.const 7
      (i32.eqz (i32.and (local.get $n) (i32.const 1)))
      br_if 1
      drop
      i32.const 9
      (i32.and (local.get $n) (i32.const 2))
      br_table $b 1)
    (i32.const 1)
    i32.add)
  (func $inner (param $n i32) (result i32)
    (call $early (local.get $n)))
  (func (export "leave") (param $n i32) (result i32)
    (local $sum i32)
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call $inner (local.get $n))))
      (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l))
    (local.get $sum))
  (func $ring (export "ring") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1)
        (call_indirect (type $i2i) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))))))
  (func $pending (export "pending") (param $n i32) (result i64)
    (if (i32.eqz (local.get $n)) (then (return (i64.const 0))))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 0)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 1)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 2)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 3)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 4)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 5)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 6)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 7)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 8)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 9)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 10)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 11)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 12)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 13)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 14)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 15)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 16)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 17)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 18)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 19)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 20)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 21)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 22)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 23)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 24)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 25)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 26)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 27)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 28)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 29)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 30)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 31)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 32)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 33)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 34)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 35)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 36)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 37)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 38)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 39)))
    (call $pending (i32.sub (local.get $n) (i32.const 1)))
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add
    i64.add))
