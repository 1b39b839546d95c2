;; An infinite loop.
;; Build: wat2wasm --debug-names spin.wat -o spin.wasm
(module
  (global $n (mut i64) (i64.const 0))
  (func (export "spin")
    (loop $l
      (global.set $n (i64.add (global.get $n) (i64.const 1)))
      (br $l))))
