;; Bulk memory: passive data, memory.init/copy/fill, data.drop (needs the
;; data count section); fill(n) and tfill(n) for the length-based charges,
;; grow(n) for the report of a failed memory.grow.
;; Build: wat2wasm --debug-names bulk.wat -o bulk.wasm
(module
  (memory 1)
  (table 1000 funcref)
  (data $hello "hello, bulkhead")
  (data (i32.const 200) "active")
  (func (export "run") (result i64)
    (local $i i32) (local $sum i64)
    (memory.fill (i32.const 0) (i32.const 0x2a) (i32.const 64))
    (memory.init $hello (i32.const 8) (i32.const 0) (i32.const 15))
    (data.drop $hello)
    (memory.copy (i32.const 100) (i32.const 4) (i32.const 30))
    (loop $l
      (local.set $sum (i64.add
        (i64.mul (local.get $sum) (i64.const 31))
        (i64.load8_u (local.get $i))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 256))))
    (local.get $sum))
  (func (export "fill") (param $n i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (memory.copy (i32.const 1) (i32.const 0) (local.get $n)))
  (func (export "tfill") (param $n i32)
    (table.fill 0 (i32.const 0) (ref.null func) (local.get $n)))
  (func (export "grow") (param $n i32) (result i32)
    (memory.grow (local.get $n))))
