;; trap is a bulkhead node whose `run` export always traps (unreachable).
;;
;; Build: wat2wasm trap.wat -o trap.wasm
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) unreachable))
