;; Recurses $depth times, then spins forever at the bottom.
;; Build: wat2wasm --debug-names deep.wat -o deep.wasm
(module
  (func $deep (export "deep") (param $depth i32) (result i32)
    (local $i i32)
    (if (i32.gt_u (local.get $depth) (i32.const 0))
      (then (return (i32.add (i32.const 1)
        (call $deep (i32.sub (local.get $depth) (i32.const 1)))))))
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))
    (local.get $i)))
