;; A tight counting loop: sums 0..n-1 (wrapping), for benchmarks.
;; Build: wat2wasm --debug-names count.wat -o count.wasm
(module
  (func (export "count") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $l
        (local.set $sum (i32.add (local.get $sum) (local.get $i)))
        (br_if $l (i32.lt_u
          (local.tee $i (i32.add (local.get $i) (i32.const 1)))
          (local.get $n)))))
    (local.get $sum)))
