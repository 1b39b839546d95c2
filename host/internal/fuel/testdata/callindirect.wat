;; call_indirect through active element segments, with function indices
;; (legacy form) and with ref.func expressions; sign extension and
;; saturating conversions.
;; Build: wat2wasm --debug-names callindirect.wat -o callindirect.wasm
(module
  (type $op (func (param i64) (result i64)))
  (import "env" "mix" (func $mix (param i64) (result i64)))
  (table 8 funcref)
  (elem (i32.const 0) $inc $dbl $mix)
  (elem (i32.const 3) funcref (ref.func $neg) (ref.null func) (ref.func $sat))
  (func $inc (type $op) (i64.add (local.get 0) (i64.const 1)))
  (func $dbl (type $op) (i64.shl (local.get 0) (i64.const 1)))
  (func $neg (type $op) (i64.extend8_s (i64.sub (i64.const 0) (local.get 0))))
  (func $sat (type $op) (i64.trunc_sat_f64_s (f64.mul (f64.convert_i64_s (local.get 0)) (f64.const 1e300))))
  (func (export "run") (result i64)
    (local $i i32) (local $acc i64)
    (local.set $acc (i64.const 5))
    (loop $l
      (if (i32.ne (i32.rem_u (local.get $i) (i32.const 6)) (i32.const 4))
        (then
          (local.set $acc (call_indirect (type $op) (local.get $acc)
            (i32.rem_u (local.get $i) (i32.const 6))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 30))))
    (local.get $acc)))
