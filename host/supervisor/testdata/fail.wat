;; fail is a bulkhead node whose `run` export always fails with a retryable
;; code (1): a plugin that is broken until its file is fixed.
;;
;; Build: wat2wasm fail.wat -o fail.wasm
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) (i32.const 1)))
