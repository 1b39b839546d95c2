;; Call depth: runaway recurses without end and without a loop (each call
;; a new frame, nothing else); deep recurses 20 000 calls deep and returns
;; 0, well within the default max_stack (4 MiB: 20 000 frames of 96 bytes
;; as charged) but over a max_stack of 512 KiB.
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
    (call $forever (i32.const 0))))
