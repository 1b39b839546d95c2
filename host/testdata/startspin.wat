;; A hostile module whose start function never returns: it spins while the
;; module is instantiated, before any call.
;;
;; Build: wat2wasm startspin.wat -o startspin.wasm
(module
  (memory (export "memory") 1)
  (global $n (mut i64) (i64.const 0))
  (func $spin
    (loop $l
      (global.set $n (i64.add (global.get $n) (i64.const 1)))
      (br $l)))
  (func (export "noop") (result i32) (i32.const 0))
  (start $spin))
