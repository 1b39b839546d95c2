;; An infinite loop of memory.fill over 1 MiB: a few instructions per
;; iteration, tens of microseconds of work each.
;; Build: wat2wasm --debug-names fillspin.wat -o fillspin.wasm
(module
  (memory 16)
  (func (export "spin")
    (loop $l
      (memory.fill (i32.const 0) (i32.const 0x2a) (i32.const 0x100000))
      (br $l))))
