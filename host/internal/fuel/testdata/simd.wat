;; SIMD: constants, shuffles, lanes, load/store lane, arithmetic.
;; Build: wat2wasm --debug-names simd.wat -o simd.wasm
(module
  (memory 1)
  (func (export "run") (result i64)
    (local $v v128) (local $i i32)
    (local.set $v (v128.const i32x4 1 2 3 4))
    (loop $l
      (local.set $v (i32x4.add (local.get $v) (i32x4.mul (local.get $v) (i32x4.splat (i32.const 3)))))
      (local.set $v (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 (local.get $v) (local.get $v)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 10))))
    (v128.store (i32.const 16) (local.get $v))
    (local.set $v (v128.load32_lane 2 (i32.const 0) (local.get $v)))
    (v128.store16_lane 1 (i32.const 40) (local.get $v))
    (local.set $v (i16x8.replace_lane 7 (local.get $v) (i32.const 0x1234)))
    (local.set $v (f32x4.add (local.get $v) (v128.load64_zero (i32.const 16))))
    (i64.add
      (i64.add (i64x2.extract_lane 0 (local.get $v)) (i64x2.extract_lane 1 (local.get $v)))
      (i64.add (i64.load (i32.const 40))
        (i64.extend_i32_u (i8x16.extract_lane_u 3 (i8x16.popcnt (local.get $v))))))))
