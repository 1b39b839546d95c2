;; A start function that runs at instantiation and calls a defined function.
;; Build: wat2wasm --debug-names start.wat -o start.wasm
(module
  (global $g (mut i64) (i64.const 0))
  (global $f funcref (ref.func $init))
  (func $step (param i64) (result i64) (i64.add (i64.mul (local.get 0) (i64.const 7)) (i64.const 3)))
  (func $init
    (local $i i32)
    (loop $l
      (global.set $g (call $step (global.get $g)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 12)))))
  (func (export "run") (result i64) (global.get $g))
  (start $init))
