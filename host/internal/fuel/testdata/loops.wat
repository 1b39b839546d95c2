;; Small loops of every shape the rewriter unrolls (and two it does not),
;; for the differential and unrolling tests. run(n) mixes their results.
;; Build: wat2wasm --debug-names loops.wat -o loops.wasm
(module
  ;; A loop with a result, left by falling off its end.
  (func $sum (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l (result i32)
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))
      (local.get $acc)))

  ;; Left early by a branch to an outer block that carries a value.
  (func $find (param $n i32) (param $want i32) (result i32)
    (local $i i32)
    (block $found (result i32)
      (loop $l
        (drop (br_if $found (local.get $i)
          (i32.eq (i32.rem_u (i32.mul (local.get $i) (i32.const 7)) (i32.const 101)) (local.get $want))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
      (i32.const -1)))

  ;; Continues from inside an if/else, and returns from inside the loop.
  (func $collatz (param $x i32) (result i32)
    (local $steps i32)
    (loop $l
      (if (i32.le_u (local.get $x) (i32.const 1))
        (then (return (local.get $steps))))
      (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
      (if (i32.and (local.get $x) (i32.const 1))
        (then
          (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 3)) (i32.const 1)))
          (br $l))
        (else (local.set $x (i32.shr_u (local.get $x) (i32.const 1)))))
      (br $l))
    (unreachable))

  ;; A loop with two results (a type index as its block type).
  (func $fibpair (param $n i32) (result i32)
    (local $a i32) (local $b i32) (local $t i32)
    (local.set $b (i32.const 1))
    (loop $l (result i32 i32)
      (local.set $t (i32.add (local.get $a) (local.get $b)))
      (local.set $a (local.get $b))
      (local.set $b (local.get $t))
      (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l)
      (local.get $a)
      (local.get $b))
    (i32.xor))

  ;; br_table inside a loop: branches to the loop, an outer block and a
  ;; block inside (not unrolled).
  (func $table (param $n i32) (result i32)
    (local $acc i32)
    (block $out
      (loop $l
        (block $in
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (local.set $acc (i32.add (local.get $acc) (local.get $n)))
          (br_table $l $in $out (i32.rem_u (local.get $n) (i32.const 3))))
        (local.set $acc (i32.xor (local.get $acc) (i32.const 0x55)))
        (br_if $l (local.get $n))))
    (local.get $acc))

  ;; A body too big to unroll.
  (func $big (param $n i32) (result i32)
    (local $i i32) (local $a i32) (local $b i32)
    (loop $l
      (local.set $a (i32.add (local.get $a) (i32.mul (local.get $i) (i32.const 3))))
      (local.set $b (i32.xor (local.get $b) (i32.rotl (local.get $a) (i32.const 5))))
      (local.set $a (i32.sub (local.get $a) (i32.shr_u (local.get $b) (i32.const 3))))
      (local.set $b (i32.add (local.get $b) (i32.mul (local.get $a) (i32.const 17))))
      (local.set $a (i32.xor (local.get $a) (i32.shl (local.get $b) (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add (local.get $a) (local.get $b)))

  ;; An outer loop around a small inner one: only the inner is unrolled;
  ;; it is left early by a branch to a block around it.
  (func $nested (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $acc i32)
    (loop $outer
      (local.set $j (i32.const 0))
      (block $skip
        (loop $inner
          (local.set $acc (i32.add (local.get $acc) (i32.xor (local.get $i) (local.get $j))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $skip (i32.eq (local.get $j) (i32.const 13)))
          (br_if $inner (i32.lt_u (local.get $j) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))

  (func (export "run") (result i32)
    (local $h i32)
    (local.set $h (call $sum (i32.const 1000)))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $find (i32.const 500) (i32.const 42))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $find (i32.const 5) (i32.const 42))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $collatz (i32.const 27))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $fibpair (i32.const 40))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $table (i32.const 100))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $big (i32.const 300))))
    (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (call $nested (i32.const 40))))
    (local.get $h)))
