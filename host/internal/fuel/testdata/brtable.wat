;; br_table dispatch in a loop, including branches that leave the function
;; (br_table and br_if to the function's own label).
;; Build: wat2wasm --debug-names brtable.wat -o brtable.wasm
(module
  (global $acc (mut i64) (i64.const 0))
  (func $bump (param $x i32)
    (block $c2
      (block $c1
        (block $c0
          (br_table $c0 $c1 $c2 3 (i32.rem_u (local.get $x) (i32.const 5))))
        (global.set $acc (i64.add (global.get $acc) (i64.const 10)))
        (br_if 1 (i32.eqz (i32.and (local.get $x) (i32.const 1)))))
      (global.set $acc (i64.mul (global.get $acc) (i64.const 3)))
      (br_if 1 (i32.gt_u (local.get $x) (i32.const 30))))
    (global.set $acc (i64.add (global.get $acc) (i64.const 1))))
  (func (export "run") (result i64)
    (local $i i32)
    (loop $l
      (call $bump (local.get $i))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 40))))
    (global.get $acc)))
