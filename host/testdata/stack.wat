;; Call depth: runaway recurses without end and without a loop (each call
;; a new frame, nothing else); deep recurses 20 000 calls deep and returns
;; 0, well within the default max_stack (4 MiB: 20 000 frames of 112 bytes
;; as charged) but over a max_stack of 512 KiB; wide recurses without end
;; like runaway, keeping 100 values on the operand stack across each call
;; (each a slot of its frame).
;;
;; Build: wat2wasm stack.wat -o stack.wasm
(module
  (memory (export "memory") 1)
  (func $down (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)))))))
  (func $forever (param $n i32) (result i32)
    (call $forever (i32.add (local.get $n) (i32.const 1))))
  (func (export "deep") (result i32)
    (i32.ne (call $down (i32.const 20000)) (i32.const 20000)))
  (func (export "runaway") (result i32)
    (call $forever (i32.const 0)))
  (func $wide (param $n i32) (result i64)
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
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 40)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 41)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 42)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 43)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 44)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 45)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 46)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 47)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 48)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 49)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 50)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 51)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 52)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 53)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 54)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 55)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 56)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 57)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 58)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 59)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 60)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 61)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 62)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 63)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 64)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 65)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 66)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 67)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 68)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 69)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 70)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 71)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 72)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 73)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 74)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 75)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 76)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 77)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 78)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 79)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 80)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 81)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 82)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 83)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 84)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 85)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 86)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 87)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 88)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 89)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 90)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 91)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 92)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 93)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 94)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 95)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 96)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 97)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 98)))
    (i64.extend_i32_u (i32.add (local.get $n) (i32.const 99)))
    (call $wide (i32.add (local.get $n) (i32.const 1)))
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
    i64.add)
  (func (export "wide") (result i32)
    (i32.wrap_i64 (call $wide (i32.const 0)))))
