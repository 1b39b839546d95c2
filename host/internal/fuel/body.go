package fuel

import (
	"errors"
	"fmt"
)

// Opcodes emitted by the rewriter.
const (
	opBlock     = 0x02
	opLoop      = 0x03
	opIf        = 0x04
	opBr        = 0x0c
	opBrIf      = 0x0d
	opEnd       = 0x0b
	opUnreach   = 0x00
	opReturn    = 0x0f
	opCall      = 0x10
	opDrop      = 0x1a
	opLocalGet  = 0x20
	opLocalSet  = 0x21
	opLocalTee  = 0x22
	opGlobalGet = 0x23
	opGlobalSet = 0x24
	opI64Const  = 0x42
	opI32Const  = 0x41
	opI32Eq     = 0x46
	opI32LtS    = 0x48
	opI32Add    = 0x6a
	opI32Sub    = 0x6b
	opI64LtS    = 0x53
	opI64Add    = 0x7c
	opI64Sub    = 0x7d
	opI64ShrU   = 0x88
	opI64ExtI32 = 0xad // i64.extend_i32_u
	blockEmpty  = 0x40
	typeI64     = 0x7e
	typeI32     = 0x7f
)

// deadRegion marks a region that control cannot enter (code after br,
// br_table, return, unreachable, return_call*): it gets no charge.
const deadRegion = -1

// rewriter holds what every function body rewrite needs, plus scratch
// buffers reused across bodies.
type rewriter struct {
	refill    uint32 // function index of the imported refill function
	counter   uint32 // global index of the fuel counter
	stack     uint32 // global index of the stack left (see stackEnter)
	maxStack  int64
	remap     func(uint32) uint32
	typeParam []uint32 // parameter count of each type
	// typeResult is the result count of each type, funcType the type of
	// each function in the input index space.
	typeResult []uint32
	funcType   []uint32
	instrs     []instr
	open       []openBlock
	// exitGlobal and hasElse: see blockInfo.
	exitGlobal []bool
	hasElse    []bool
	hasCall    []bool
	loc, glob  bool // where the counter's value is (see needLocal)
	regions    []int64
	noUnroll   bool // tests: compare with the plain form (see unroll)
	noStack    bool // benchmarks: no stack bound
	// entryLabels counts the labels the body sits in: 1 for stackEnter's
	// block, 2 for entryOpen's loop and block (entryLoop).
	entryLabels uint32
	entryLoop   bool
	// frame is the current function's FrameCost; stackLocal holds the
	// stack left below its frame, in functions that call.
	frame      int64
	stackLocal uint32
	funcIndex  int // for error messages, in the input index space
	base       int // offset of the body in the input module
}

// openBlock is a block, loop or if open during the emit pass. A hoisted
// loop (see loopOpen) has three more labels around it in the output.
type openBlock struct {
	hoisted    int   // hoisted loops among this block and those around it
	cost       int64 // charge of a hoisted loop's header
	loop       bool
	exitGlobal bool // the end label wants the counter in the global
	loc, glob  bool // where the counter was at an if (for its else)
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
// The fuel counter lives in a new i64 local while the function runs, so
// that it is a register in loops; the emit pass tracks whether its value
// is in the local, the global or both, and syncs them only where the next
// use needs it (see needLocal). A charge is inserted at function entry and
// after every loop, if, else, end and br_if: it subtracts the number of
// instructions of the straight-line region that follows; at entry and loop
// headers it also calls refill when the counter goes negative (outside the
// loop where loopOpen applies).
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

	// Pass 1: instruction boundaries and region costs; then again over
	// the code with small loops unrolled, if any.
	if err := rw.scan(code, localsEnd, nil); err != nil {
		return nil, err
	}
	if !rw.noUnroll {
		if unrolled, free := rw.unroll(code); unrolled != nil {
			code = unrolled
			if err := rw.scan(code, localsEnd, free); err != nil {
				return nil, fmt.Errorf("fuel: unrolling function %d: %w", rw.funcIndex, err)
			}
		}
	}

	rw.blockInfo()

	// Pass 2: emit.
	bulk := rw.hasKind(kBulk) || rw.hasKind(kGrow)
	calls := !rw.noStack && (rw.hasKind(kCall) || rw.hasKind(kCallIndirect) || rw.hasKind(kReturnCall) || rw.hasKind(kReturnCallIndirect))
	var i32s byte
	if bulk {
		i32s++ // fuelLocal+1: bulkCharge's length, growReport's result
	}
	if calls {
		rw.stackLocal = fuelLocal + 1 + uint32(i32s)
		i32s++
	}
	if i32s > 0 {
		out = appendU32(out, nGroups+2)
	} else {
		out = appendU32(out, nGroups+1)
	}
	out = append(out, code[countLen(code):localsEnd]...)
	out = append(out, 1, typeI64)
	if i32s > 0 {
		out = append(out, i32s, typeI32)
	}
	rw.frame = FrameCost(nLocals + uint64(rw.liveAtCalls(code)))
	rw.entryLabels, rw.entryLoop = 0, false
	if !rw.noStack {
		out = rw.stackEnter(out, calls)
	}
	rw.loc, rw.glob = false, true
	entryCost := rw.regions[0]
	if entryCost > 0 && rw.selfRecursive() {
		out = rw.entryOpen(out, fuelLocal, entryCost)
	} else {
		out = rw.charge(out, fuelLocal, entryCost, true)
	}
	next := 1
	last := len(rw.instrs) - 1
	rw.open = rw.open[:0]
	for i, in := range rw.instrs {
		charged := false
		switch in.kind {
		case kBlock:
			rw.push(openBlock{exitGlobal: rw.exitGlobal[i]})
			out = append(out, code[in.start:in.end]...)
		case kIf:
			b := openBlock{exitGlobal: rw.exitGlobal[i]}
			if !rw.hasElse[i] {
				// The implicit else path takes the state at the if to
				// its end.
				out = rw.meet(out, fuelLocal, b.exitGlobal)
			}
			b.loc, b.glob = rw.loc, rw.glob
			rw.push(b)
			out = append(out, code[in.start:in.end]...)
		case kElse:
			top := &rw.open[len(rw.open)-1]
			out = rw.meet(out, fuelLocal, top.exitGlobal)
			rw.loc, rw.glob = top.loc, top.glob
			out = append(out, code[in.start:in.end]...)
		case kLoop:
			out = rw.needLocal(out, fuelLocal)
			cost := rw.regions[next]
			if bt := code[in.start+1 : in.end]; cost > 0 && !rw.hasCall[i] && rw.noParams(bt) {
				out = rw.loopOpen(out, bt, fuelLocal, cost)
				rw.push(openBlock{loop: true, hoisted: 1, cost: cost})
				rw.loc, rw.glob = true, false
				charged = true
			} else {
				rw.push(openBlock{loop: true})
				out = append(out, code[in.start:in.end]...)
			}
		case kCall:
			out = rw.needGlobal(out, fuelLocal)
			out = append(out, opCall)
			out = appendU32(out, rw.remap(in.imm))
			out = rw.stackRestore(out)
			rw.loc = false
		case kCallIndirect:
			out = rw.needGlobal(out, fuelLocal)
			out = append(out, code[in.start:in.end]...)
			out = rw.stackRestore(out)
			rw.loc = false
		case kReturnCall:
			out = rw.needGlobal(out, fuelLocal)
			out = rw.stackLeave(out)
			out = append(out, code[in.start])
			out = appendU32(out, rw.remap(in.imm))
		case kBulk:
			out = rw.bulkCharge(out, fuelLocal, in.imm)
			out = append(out, code[in.start:in.end]...)
		case kGrow:
			out = append(out, code[in.start:in.end]...)
			out = rw.growReport(out, fuelLocal)
		case kRefFunc:
			out = append(out, code[in.start])
			out = appendU32(out, rw.remap(in.imm))
		case kReturnCallIndirect:
			out = rw.needGlobal(out, fuelLocal)
			out = rw.stackLeave(out)
			out = append(out, code[in.start:in.end]...)
		case kReturn:
			out = rw.needGlobal(out, fuelLocal)
			out = append(out, code[in.start:in.end]...)
		case kBr, kBrIf:
			out = rw.meet(out, fuelLocal, rw.targetGlobal(in.imm))
			out = append(out, code[in.start])
			out = appendU32(out, rw.label(in.imm))
		case kBrTable:
			out = rw.brTable(out, code[in.start:in.end], fuelLocal)
		case kEnd:
			if i == last {
				out = rw.needGlobal(out, fuelLocal)
				if rw.entryLoop {
					out = rw.entryClose(out, fuelLocal, entryCost)
				}
				if !rw.noStack {
					out = rw.stackClose(out)
				}
				out = append(out, opEnd)
				break
			}
			top := rw.open[len(rw.open)-1]
			rw.open = rw.open[:len(rw.open)-1]
			switch {
			case top.cost > 0:
				out = rw.loopClose(out, fuelLocal, top.cost)
			case top.loop:
				out = append(out, opEnd)
			default:
				// A join: every path in meets the label's state.
				out = rw.meet(out, fuelLocal, top.exitGlobal)
				rw.loc, rw.glob = !top.exitGlobal, top.exitGlobal
				out = append(out, opEnd)
			}
		default:
			out = append(out, code[in.start:in.end]...)
		}
		if i == last {
			break
		}
		switch in.kind {
		case kBr, kBrTable, kReturn, kUnreachable, kReturnCall, kReturnCallIndirect:
			// Unreachable code up to the next end or else: no sync.
			rw.loc, rw.glob = true, true
		}
		switch in.kind {
		case kLoop, kIf, kElse, kEnd, kBrIf, kBr, kBrTable, kReturn, kUnreachable, kReturnCall, kReturnCallIndirect:
			if !charged {
				out = rw.charge(out, fuelLocal, rw.regions[next], in.kind == kLoop)
			}
			next++
		}
	}
	return out, nil
}

// scan decodes the instructions of code from offset from into rw.instrs
// and counts the instructions of each region into rw.regions, leaving out
// those starting at the offsets in free (ascending).
func (rw *rewriter) scan(code []byte, from int, free []int) error {
	d := decoder{r: reader{b: code, pos: from}}
	rw.instrs = rw.instrs[:0]
	rw.regions = append(rw.regions[:0], 0)
	cur := 0
	for {
		in, err := d.next()
		if err != nil {
			return rw.wrapErr(err, in.start)
		}
		rw.instrs = append(rw.instrs, in)
		if d.depth < 0 {
			break
		}
		isFree := len(free) > 0 && free[0] == in.start
		if isFree {
			free = free[1:]
		}
		if in.kind != kEnd && in.kind != kElse && rw.regions[cur] != deadRegion && !isFree {
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
	if !d.r.eof() {
		return rw.wrapErr(errors.New("code after the end of the function body"), d.r.pos)
	}
	return nil
}

// blockInfo computes, for each block and if in rw.instrs (by index),
// whether its end label keeps the counter in the global (exitGlobal: the
// end is followed only by ends up to the function's end and the block
// holds no loop, so a branch there leaves the function without another
// charge), for each if whether it has an else, and for each loop whether
// it holds a call (its refill call then stays inside: see loopOpen).
func (rw *rewriter) blockInfo() {
	n := len(rw.instrs)
	rw.exitGlobal = append(rw.exitGlobal[:0], make([]bool, n)...)
	rw.hasElse = append(rw.hasElse[:0], make([]bool, n)...)
	rw.hasCall = append(rw.hasCall[:0], make([]bool, n)...)
	type open struct {
		at      int
		hasLoop bool
		hasCall bool
	}
	var stack []open
	tail := n - 1 // instrs[tail:] are all ends
	for tail > 0 && rw.instrs[tail-1].kind == kEnd {
		tail--
	}
	for i, in := range rw.instrs[:n-1] {
		switch in.kind {
		case kBlock, kIf, kLoop:
			stack = append(stack, open{at: i, hasLoop: in.kind == kLoop})
		case kElse:
			rw.hasElse[stack[len(stack)-1].at] = true
		case kCall, kCallIndirect:
			if len(stack) > 0 {
				stack[len(stack)-1].hasCall = true
			}
		case kEnd:
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if rw.instrs[top.at].kind != kLoop {
				rw.exitGlobal[top.at] = !top.hasLoop && i >= tail
			}
			rw.hasCall[top.at] = top.hasCall
			if len(stack) > 0 {
				stack[len(stack)-1].hasLoop = stack[len(stack)-1].hasLoop || top.hasLoop
				stack[len(stack)-1].hasCall = stack[len(stack)-1].hasCall || top.hasCall
			}
		}
	}
}

// The counter's truth is in the local (rw.loc), the global (rw.glob) or
// both. Charges need it in the local, calls and exits from the function in
// the global; a loop header in the local; the end of a block or if in the
// local, or in the global where exitGlobal says so.

func (rw *rewriter) needLocal(out []byte, local uint32) []byte {
	if !rw.loc {
		out = rw.syncIn(out, local)
		rw.loc = true
	}
	return out
}

func (rw *rewriter) needGlobal(out []byte, local uint32) []byte {
	if !rw.glob {
		out = rw.syncOut(out, local)
		rw.glob = true
	}
	return out
}

// meet brings the counter where a label wants it.
func (rw *rewriter) meet(out []byte, local uint32, global bool) []byte {
	if global {
		return rw.needGlobal(out, local)
	}
	return rw.needLocal(out, local)
}

// targetGlobal reports whether branch label l wants the counter in the
// global.
func (rw *rewriter) targetGlobal(l uint32) bool {
	n := len(rw.open)
	if int64(l) >= int64(n) {
		return true // the function's own label
	}
	b := rw.open[n-1-int(l)]
	return !b.loop && b.exitGlobal
}

func (rw *rewriter) push(b openBlock) {
	if n := len(rw.open); n > 0 {
		b.hoisted += rw.open[n-1].hoisted
	}
	rw.open = append(rw.open, b)
}

// label returns the output label for input label l: three more for each
// hoisted loop that the branch leaves.
func (rw *rewriter) label(l uint32) uint32 {
	n := len(rw.open)
	if n == 0 {
		return l + rw.entryLabels // the function's label
	}
	crossed := rw.open[n-1].hoisted
	if int64(l) < int64(n) {
		crossed -= rw.open[n-1-int(l)].hoisted
	} else {
		// The branch leaves the function: it crosses every open block,
		// and the entry's (see entryOpen).
		l += rw.entryLabels
	}
	return l + 3*uint32(crossed)
}

// brTable re-encodes a br_table instruction (already validated by the
// decoder) with its labels renumbered, after bringing the counter where
// each target wants it.
func (rw *rewriter) brTable(out, b []byte, local uint32) []byte {
	r := reader{b: b, pos: 1}
	n, _ := r.u32()
	for i := uint64(0); i <= uint64(n); i++ {
		l, _ := r.u32()
		out = rw.meet(out, local, rw.targetGlobal(l))
	}
	r.pos = 1
	_, _ = r.u32()
	out = append(out, b[0])
	out = appendU32(out, n)
	for i := uint64(0); i <= uint64(n); i++ {
		l, _ := r.u32()
		out = appendU32(out, rw.label(l))
	}
	return out
}

// noParams reports whether a block type takes no parameters.
func (rw *rewriter) noParams(bt []byte) bool {
	if len(bt) == 1 && (bt[0] == blockEmpty || isValType(bt[0])) {
		return true
	}
	r := reader{b: bt}
	x, err := r.sleb(33)
	return err == nil && x >= 0 && x < int64(len(rw.typeParam)) && rw.typeParam[x] == 0
}

// loopOpen emits the header of a loop without parameters or calls, with
// the refill call hoisted out of it so that the loop body has no call on
// any path (wazero's compiler then keeps the loop's values in registers; a
// loop that calls anyway keeps the plain form, which measured faster there):
//
//	block bt                    ;; $exit
//	  loop bt                   ;; $again
//	    block                   ;; $need
//	      loop bt               ;; the original loop
//	        local.get $fuel; i64.const cost; i64.sub; local.tee $fuel
//	        i64.const 0; i64.lt_s; br_if $need
//	        ...                 ;; the original body
//
// Branches from inside to labels outside the loop get three more levels.
func (rw *rewriter) loopOpen(out, bt []byte, local uint32, cost int64) []byte {
	out = append(out, opBlock)
	out = append(out, bt...)
	out = append(out, opLoop)
	out = append(out, bt...)
	out = append(out, opBlock, blockEmpty, opLoop)
	out = append(out, bt...)
	out = append(out, opLocalGet)
	out = appendU32(out, local)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	out = append(out, opI64Sub, opLocalTee)
	out = appendU32(out, local)
	return append(out, opI64Const, 0, opI64LtS, opBrIf, 1)
}

// loopClose emits the end of a loop opened by loopOpen:
//
//	      end                   ;; the original loop
//	      br $exit
//	    end                     ;; $need: the counter went negative
//	    local.get $fuel; call $refill
//	    i64.const cost; i64.add; local.set $fuel
//	    br $again               ;; the header charges cost again
//	  end
//	end
func (rw *rewriter) loopClose(out []byte, local uint32, cost int64) []byte {
	out = append(out, opEnd, opBr, 2, opEnd, opLocalGet)
	out = appendU32(out, local)
	out = append(out, opCall)
	out = appendU32(out, rw.refill)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	out = append(out, opI64Add, opLocalSet)
	out = appendU32(out, local)
	return append(out, opBr, 0, opEnd, opEnd)
}

// hasKind reports whether the body in rw.instrs has an instruction of kind k.
func (rw *rewriter) hasKind(k kind) bool {
	for _, in := range rw.instrs {
		if in.kind == k {
			return true
		}
	}
	return false
}

// bulkCharge emits, before a bulk memory or table instruction, the part
// of its cost that grows with its length operand n (an i32 on top of the
// stack): one unit per 8 bytes of memory (what a loop of i64 loads and
// stores doing the same would be charged, per store) or per table element.
// The region already charged the instruction itself.
//
//	local.set $n
//	local.get $fuel; local.get $n; i64.extend_i32_u
//	i64.const shift; i64.shr_u; i64.sub; local.set $fuel
//	local.get $n
//
// Only a subtraction: the next check point pays the debt (a loop around
// a big memory.fill reaches the host at every iteration).
func (rw *rewriter) bulkCharge(out []byte, local, sub uint32) []byte {
	shift := byte(3)
	switch sub {
	case fcTableInit, fcTableCopy, fcTableGrow, fcTableFill:
		shift = 0
	}
	n := local + 1
	out = appendOp(out, opLocalSet, n)
	out = rw.needLocal(out, local)
	rw.glob = false
	out = appendOp(out, opLocalGet, local)
	out = appendOp(out, opLocalGet, n)
	out = append(out, opI64ExtI32, opI64Const, shift, opI64ShrU, opI64Sub)
	out = appendOp(out, opLocalSet, local)
	return appendOp(out, opLocalGet, n)
}

// growReport emits, after a memory.grow, a report of its failure to the
// host (wazero fails a grow past the memory limit by returning -1, without
// an error the host could see):
//
//	local.tee $r; i32.const -1; i32.eq
//	if; i64.const GrowFailedCounter; call $refill; drop; end
//	local.get $r
//
// The counter is not touched.
func (rw *rewriter) growReport(out []byte, local uint32) []byte {
	r := local + 1
	out = appendOp(out, opLocalTee, r)
	out = append(out, opI32Const, 0x7f, opI32Eq, opIf, blockEmpty, opI64Const)
	out = appendS64(out, GrowFailedCounter)
	out = appendOp(out, opCall, rw.refill)
	out = append(out, opDrop, opEnd)
	return appendOp(out, opLocalGet, r)
}

// appendOp appends an instruction with one index immediate.
func appendOp(out []byte, op byte, idx uint32) []byte {
	return appendU32(append(out, op), idx)
}

// selfRecursive reports whether the body in rw.instrs calls its own
// function directly and has no loop: recursion is then its only way to
// repeat, and every repetition passes the entry test.
func (rw *rewriter) selfRecursive() bool {
	self := false
	for _, in := range rw.instrs {
		switch in.kind {
		case kLoop:
			return false
		case kCall, kReturnCall:
			self = self || int(in.imm) == rw.funcIndex
		}
	}
	return self
}

// entryOpen emits the entry charge of a self-recursive function with the
// refill call out of line, after the body, so that the common path falls
// through into the body instead of jumping over the call (the test is on
// every call; fib(25) measured 1.17x bare this way, 1.25x with the refill
// call in an if):
//
//	global.get $counter; local.set $fuel
//	loop                        ;; $retry
//	  block                     ;; $need
//	    local.get $fuel; i64.const cost; i64.sub; local.tee $fuel
//	    i64.const 0; i64.lt_s; br_if $need
//	    ...                     ;; the body
//
// Only there: wrapping every function so cost the Go guest 2-10 %. Branches
// to the function's label get two more levels.
func (rw *rewriter) entryOpen(out []byte, local uint32, cost int64) []byte {
	out = rw.needLocal(out, local)
	rw.glob = false
	out = append(out, opLoop, blockEmpty, opBlock, blockEmpty)
	out = appendOp(out, opLocalGet, local)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	out = append(out, opI64Sub)
	out = appendOp(out, opLocalTee, local)
	rw.entryLabels += 2
	rw.entryLoop = true
	return append(out, opI64Const, 0, opI64LtS, opBrIf, 0)
}

// entryClose emits, before the function's end, the end of what entryOpen
// opened (the counter is already in the global):
//
//	    return                  ;; the body's results
//	  end                       ;; $need: the counter went negative
//	  local.get $fuel; call $refill
//	  i64.const cost; i64.add; local.set $fuel
//	  br $retry                 ;; the entry charges cost again
//	end
//	unreachable
func (rw *rewriter) entryClose(out []byte, local uint32, cost int64) []byte {
	out = append(out, opReturn, opEnd)
	out = appendOp(out, opLocalGet, local)
	out = appendOp(out, opCall, rw.refill)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	out = append(out, opI64Add)
	out = appendOp(out, opLocalSet, local)
	return append(out, opBr, 0, opEnd, opUnreach)
}

// stackEnter emits the stack check at function entry, before anything
// else, with the trap out of line (see stackClose) so that the common path
// falls through. $stack is the stack bound left to the function; its frame
// takes rw.frame of it. A function that calls keeps the rest in a local
// and in $stack (for its callees):
//
//	block                       ;; $overflow
//	  global.get $stack; i32.const frame; i32.sub; local.tee $left
//	  i32.const 0; i32.lt_s; br_if $overflow
//	  local.get $left; global.set $stack
//	  ...                       ;; the body
//
// and restores $stack from the local after each call (stackRestore), which
// undoes whatever the callee took, however it returned. A function that
// does not call only tests (global.get $stack; i32.const frame; i32.lt_s;
// br_if $overflow), leaving $stack alone. Branches to the function's label
// get one more level.
func (rw *rewriter) stackEnter(out []byte, calls bool) []byte {
	out = append(out, opBlock, blockEmpty)
	out = appendOp(out, opGlobalGet, rw.stack)
	out = append(out, opI32Const)
	out = appendS64(out, rw.frame)
	if calls {
		out = append(out, opI32Sub)
		out = appendOp(out, opLocalTee, rw.stackLocal)
		out = append(out, opI32Const, 0)
	}
	out = append(out, opI32LtS, opBrIf, 0)
	if calls {
		out = appendOp(out, opLocalGet, rw.stackLocal)
		out = appendOp(out, opGlobalSet, rw.stack)
	}
	rw.entryLabels++
	return out
}

// stackClose emits, before the function's end, the end of what
// stackEnter opened: the refill call traps with ErrStackExhausted.
//
//	  return                    ;; the body's results
//	end                         ;; $overflow
//	i64.const StackExhaustedCounter; call $refill; drop; unreachable
func (rw *rewriter) stackClose(out []byte) []byte {
	if !rw.entryLoop {
		out = append(out, opReturn)
	}
	out = append(out, opEnd, opI64Const)
	out = appendS64(out, StackExhaustedCounter)
	out = appendOp(out, opCall, rw.refill)
	return append(out, opDrop, opUnreach)
}

// stackRestore emits, after a call, local.get $left; global.set $stack.
func (rw *rewriter) stackRestore(out []byte) []byte {
	if rw.noStack {
		return out
	}
	out = appendOp(out, opLocalGet, rw.stackLocal)
	return appendOp(out, opGlobalSet, rw.stack)
}

// stackLeave emits, before a tail call, the return of the frame to $stack
// (local.get $left; i32.const frame; i32.add; global.set $stack): the
// callee's frame replaces this one, so a loop of tail calls runs in
// constant stack.
func (rw *rewriter) stackLeave(out []byte) []byte {
	if rw.noStack {
		return out
	}
	out = appendOp(out, opLocalGet, rw.stackLocal)
	out = append(out, opI32Const)
	out = appendS64(out, rw.frame)
	out = append(out, opI32Add)
	return appendOp(out, opGlobalSet, rw.stack)
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
	out = rw.needLocal(out, local)
	rw.glob = false
	out = appendOp(out, opLocalGet, local)
	out = append(out, opI64Const)
	out = appendS64(out, cost)
	if !check {
		out = append(out, opI64Sub)
		return appendOp(out, opLocalSet, local)
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
