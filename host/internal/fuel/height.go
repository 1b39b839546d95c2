package fuel

// liveAtCalls returns an upper bound on the number of operand stack values
// a call (call or call_indirect) in the body in rw.instrs needs in the
// frame: the values under the call's arguments, which wazero keeps in
// stack slots while the callee runs, and the arguments and results
// themselves, of which those beyond the registers pass through the frame.
// A function holding many values there across a recursive call takes more
// stack than its locals say (100 pending i64 values: about 790 bytes a
// frame).
//
// Every instruction outside control flow and calls pushes at most one
// value; the count uses each one's exact effect where it is known and, for
// SIMD, assumes no pops (apart from v128.const, every SIMD instruction
// pops at least one value, so that overestimates by at most one each).
// After br, br_table, return, unreachable or a tail call the count is left
// as it is up to the next else or end, which resets it: an overestimate.
func (rw *rewriter) liveAtCalls(code []byte) int64 {
	type ctl struct{ base, params, results int64 }
	var stack []ctl
	var h, live int64
	for _, in := range rw.instrs[:len(rw.instrs)-1] {
		op := code[in.start]
		switch in.kind {
		case kBlock, kLoop, kIf:
			if in.kind == kIf {
				h--
			}
			p, r := rw.blockArity(code[in.start+1 : in.end])
			stack = append(stack, ctl{base: max(h-p, 0), params: p, results: r})
		case kElse:
			if len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			h = top.base + top.params
		case kEnd:
			if len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			h = top.base + top.results
		case kBrIf:
			h--
		case kBrTable, kBr, kReturn, kUnreachable, kReturnCall, kReturnCallIndirect:
		case kCall:
			p, r := rw.funcArity(in.imm)
			live = max(live, h, h-p+r)
			h += r - p
		case kCallIndirect:
			r := reader{b: code, pos: in.start + 1}
			t, _ := r.u32() // validated by the decoder
			p, res := int64(0), int64(0)
			if int(t) < len(rw.typeParam) {
				p, res = int64(rw.typeParam[t]), int64(rw.typeResult[t])
			}
			live = max(live, h, h-p-1+res)
			h += res - p - 1
		case kGrow:
		case kBulk:
			if in.imm == fcTableGrow {
				h--
			} else {
				h -= 3
			}
		case kRefFunc:
			h++
		default:
			h += plainEffect(op, code[in.start+1:in.end])
		}
		if h < 0 {
			h = 0
		}
	}
	return live
}

// plainEffect returns the change to the operand stack height of a plain
// instruction (an upper bound for SIMD; see liveAtCalls).
func plainEffect(op byte, imm []byte) int64 {
	switch {
	case op == 0x01: // nop
		return 0
	case op == 0x1a: // drop
		return -1
	case op == 0x1b || op == 0x1c: // select
		return -2
	case op == 0x20 || op == 0x23: // local.get, global.get
		return 1
	case op == 0x21 || op == 0x24: // local.set, global.set
		return -1
	case op == 0x22 || op == 0x25: // local.tee, table.get
		return 0
	case op == 0x26: // table.set
		return -2
	case op >= 0x28 && op <= 0x35: // loads
		return 0
	case op >= 0x36 && op <= 0x3e: // stores
		return -2
	case op == 0x3f: // memory.size
		return 1
	case op >= 0x41 && op <= 0x44: // constants
		return 1
	case op == 0x45 || op == 0x50: // eqz
		return 0
	case op >= 0x46 && op <= 0x66: // comparisons
		return -1
	case op >= 0x67 && op <= 0x69, op >= 0x79 && op <= 0x7b,
		op >= 0x8b && op <= 0x91, op >= 0x99 && op <= 0x9f, op >= 0xa7 && op <= 0xc4: // unary, conversions
		return 0
	case op >= 0x6a && op <= 0x78, op >= 0x7c && op <= 0x8a,
		op >= 0x92 && op <= 0x98, op >= 0xa0 && op <= 0xa6: // binary
		return -1
	case op == 0xd0: // ref.null
		return 1
	case op == 0xd1: // ref.is_null
		return 0
	case op == 0xfc:
		r := reader{b: imm}
		switch sub, _ := r.u32(); sub {
		case 16: // table.size
			return 1
		}
		return 0 // saturating truncations, data.drop, elem.drop
	case op == 0xfd:
		r := reader{b: imm}
		if sub, _ := r.u32(); sub == 12 { // v128.const
			return 1
		}
		return 0
	}
	return 1
}

// blockArity returns the parameter and result counts of a block type.
func (rw *rewriter) blockArity(bt []byte) (int64, int64) {
	if len(bt) == 1 && bt[0] == blockEmpty {
		return 0, 0
	}
	if len(bt) == 1 && isValType(bt[0]) {
		return 0, 1
	}
	r := reader{b: bt}
	x, err := r.sleb(33)
	if err != nil || x < 0 || x >= int64(len(rw.typeParam)) {
		return 0, 0
	}
	return int64(rw.typeParam[x]), int64(rw.typeResult[x])
}

// funcArity returns the parameter and result counts of function f (input
// index space).
func (rw *rewriter) funcArity(f uint32) (int64, int64) {
	if int(f) >= len(rw.funcType) {
		return 0, 0
	}
	t := rw.funcType[f]
	return int64(rw.typeParam[t]), int64(rw.typeResult[t])
}
