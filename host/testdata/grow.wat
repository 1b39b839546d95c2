;; Memory-cap classification: bigGrow asks for far more memory than any cap
;; allows (past the 4 GiB a 32-bit memory can have) and traps, with its
;; memory small; capGrow asks for 64 MiB, over a 16 MiB cap, and traps;
;; nearCapTrap grows to exactly a 16 MiB cap (that succeeds) and traps for
;; another reason.
;;
;; Build: wat2wasm grow.wat -o grow.wasm
(module
  (memory (export "memory") 1)
  (func (export "bigGrow") (result i32)
    (if (i32.eq (memory.grow (i32.const 100000)) (i32.const -1))
      (then unreachable))
    (i32.const 0))
  (func (export "capGrow") (result i32)
    (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1))
      (then unreachable))
    (i32.const 0))
  (func (export "nearCapTrap") (result i32)
    (drop (memory.grow (i32.const 255)))
    unreachable))
