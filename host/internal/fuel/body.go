package fuel

import (
	"errors"
	"fmt"
)

// Opcodes emitted by the rewriter.
const (
	opIf        = 0x04
	opEnd       = 0x0b
	opCall      = 0x10
	opDrop      = 0x1a
	opLocalGet  = 0x20
	opLocalSet  = 0x21
	opLocalTee  = 0x22
	opGlobalGet = 0x23
	opGlobalSet = 0x24
	opI64Const  = 0x42
	opI64LtS    = 0x53
	opI64Sub    = 0x7d
	blockEmpty  = 0x40
	typeI64     = 0x7e
)

// deadRegion marks a region that control cannot enter (code after br,
// br_table, return, unreachable, return_call*): it gets no charge.
const deadRegion = -1

// rewriter holds what every function body rewrite needs, plus scratch
// buffers reused across bodies.
type rewriter struct {
	refill    uint32 // function index of the imported refill function
	counter   uint32 // global index of the fuel counter
	remap     func(uint32) uint32
	instrs    []instr
	regions   []int64
	funcIndex int // for error messages, in the input index space
	base      int // offset of the body in the input module
}

// wrapErr turns a decoding error into ErrMalformed or *UnsupportedError
// carrying the position.
func (rw *rewriter) wrapErr(err error, pos int) error {
	var u errUnsupported
	if errors.As(err, &u) {
		return &UnsupportedError{Func: rw.funcIndex, Offset: rw.base + pos, What: u.what}
	}
	return fmt.Errorf("%w: function %d at offset %#x: %w", ErrMalformed, rw.funcIndex, rw.base+pos, err)
}

// body rewrites one function body (the bytes after the size prefix) whose
// type has nParams parameters, appending the result to out.
//
// The fuel counter lives in a new i64 local while the function runs; it is
// loaded from the global at entry and after every call, and stored back
// before every call and every way out of the function, so the counter is in
// a register in loops. A charge point is inserted at function entry and
// after every loop, if, else, end and br_if: it subtracts the number of
// instructions of the straight-line region that follows and calls refill
// when the counter goes negative.
func (rw *rewriter) body(out, code []byte, nParams uint32) ([]byte, error) {
	d := decoder{r: reader{b: code}}
	r := &d.r
	nGroups, err := r.u32()
	if err != nil {
		return nil, rw.wrapErr(err, r.pos)
	}
	nLocals := uint64(nParams)
	for i := uint32(0); i < nGroups; i++ {
		n, err := r.u32()
		if err != nil {
			return nil, rw.wrapErr(err, r.pos)
		}
		if _, err := d.valType(); err != nil {
			return nil, rw.wrapErr(err, r.pos-1)
		}
		nLocals += uint64(n)
	}
	if nLocals > maxLocals {
		return nil, &UnsupportedError{Func: rw.funcIndex, Offset: rw.base, What: fmt.Sprintf("%d locals (limit %d)", nLocals, maxLocals)}
	}
	fuelLocal := uint32(nLocals)
	localsEnd := r.pos

	// Pass 1: instruction boundaries and region costs.
	rw.instrs = rw.instrs[:0]
	rw.regions = append(rw.regions[:0], 0)
	cur := 0
	for {
		in, err := d.next()
		if err != nil {
			return nil, rw.wrapErr(err, in.start)
		}
		rw.instrs = append(rw.instrs, in)
		if d.depth < 0 {
			break
		}
		if in.kind != kEnd && in.kind != kElse && rw.regions[cur] != deadRegion {
			rw.regions[cur]++
		}
		switch in.kind {
		case kLoop, kIf, kElse, kEnd, kBrIf:
			rw.regions = append(rw.regions, 0)
			cur++
		case kBr, kBrTable, kReturn, kUnreachable, kReturnCall, kReturnCallIndirect:
			rw.regions = append(rw.regions, deadRegion)
			cur++
		}
	}
	if !r.eof() {
		return nil, rw.wrapErr(errors.New("code after the end of the function body"), r.pos)
	}

	// Pass 2: emit.
	out = appendU32(out, nGroups+1)
	out = append(out, code[countLen(code):localsEnd]...)
	out = append(out, 1, typeI64)
	out = rw.syncIn(out, fuelLocal)
	out = rw.charge(out, fuelLocal, rw.regions[0], true)
	next := 1
	last := len(rw.instrs) - 1
	for i, in := range rw.instrs {
		switch in.kind {
		case kCall:
			out = rw.syncOut(out, fuelLocal)
			out = append(out, opCall)
			out = appendU32(out, rw.remap(in.imm))
			out = rw.syncIn(out, fuelLocal)
		case kCallIndirect:
			out = rw.syncOut(out, fuelLocal)
			out = append(out, code[in.start:in.end]...)
			out = rw.syncIn(out, fuelLocal)
		case kReturnCall:
			out = rw.syncOut(out, fuelLocal)
			out = append(out, code[in.start])
			out = appendU32(out, rw.remap(in.imm))
		case kRefFunc:
			out = append(out, code[in.start])
			out = appendU32(out, rw.remap(in.imm))
		case kReturn, kReturnCallIndirect:
			out = rw.syncOut(out, fuelLocal)
			out = append(out, code[in.start:in.end]...)
		case kBr, kBrIf, kBrTable:
			if in.toFunc {
				out = rw.syncOut(out, fuelLocal)
			}
			out = append(out, code[in.start:in.end]...)
		case kEnd:
			if i == last {
				out = rw.syncOut(out, fuelLocal)
			}
			out = append(out, code[in.start:in.end]...)
		default:
			out = append(out, code[in.start:in.end]...)
		}
		if i == last {
			break
		}
		switch in.kind {
		case kLoop, kIf, kElse, kEnd, kBrIf, kBr, kBrTable, kReturn, kUnreachable, kReturnCall, kReturnCallIndirect:
			out = rw.charge(out, fuelLocal, rw.regions[next], in.kind == kLoop)
			next++
		}
	}
	return out, nil
}

// countLen returns the length of the LEB128 number at the start of b.
func countLen(b []byte) int {
	for i, c := range b {
		if c&0x80 == 0 {
			return i + 1
		}
	}
	return len(b)
}

func (rw *rewriter) syncIn(out []byte, local uint32) []byte {
	out = append(out, opGlobalGet)
	out = appendU32(out, rw.counter)
	out = append(out, opLocalSet)
	return appendU32(out, local)
}

func (rw *rewriter) syncOut(out []byte, local uint32) []byte {
	out = append(out, opLocalGet)
	out = appendU32(out, local)
	out = append(out, opGlobalSet)
	return appendU32(out, rw.counter)
}

// charge emits the charge of a region of cost instructions. At a check
// point (function entry and loop header: every cycle passes one) it is
//
//	local.get $fuel; i64.const cost; i64.sub; local.tee $fuel
//	i64.const 0; i64.lt_s
//	if
//	  local.get $fuel; call $refill; local.set $fuel
//	end
//
// and elsewhere only the subtraction (local.get; i64.const; i64.sub;
// local.set): straight-line code between two check points is finite, so
// the counter can only run a bounded way past zero before the next check.
func (rw *rewriter) charge(out []byte, local uint32, cost int64, check bool) []byte {
	if cost <= 0 {
		return out
	}
	out = append(out, opLocalGet)
	out = appendU32(out, local)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	if !check {
		out = append(out, opI64Sub, opLocalSet)
		return appendU32(out, local)
	}
	out = append(out, opI64Sub, opLocalTee)
	out = appendU32(out, local)
	out = append(out, opI64Const, 0, opI64LtS, opIf, blockEmpty)
	out = append(out, opLocalGet)
	out = appendU32(out, local)
	out = append(out, opCall)
	out = appendU32(out, rw.refill)
	out = append(out, opLocalSet)
	out = appendU32(out, local)
	return append(out, opEnd)
}
