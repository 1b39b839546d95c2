package fuel

// Unrolling small loops.
//
// A loop header is a check point: every iteration pays a subtract, a
// compare and a branch. On a loop whose body is a dozen instructions that
// is a fifth of its time. So before charges are placed, a small loop is
// unrolled: its body is repeated unrollCopies times inside the loop, and
// only the first copy starts at the loop header. The other copies start
// where the previous copy's branch back to the loop lands, so their first
// region is charged with a subtract and no test, and each copy is charged
// exactly what the same iteration costs in the plain loop: fuel counts do
// not change (the instructions the unrolling adds are free), only where the
// counter is tested. A spinning loop still reaches the host within
// unrollCopies iterations of an empty counter.
//
// The shape, for copies B1..B4 of the body B of "loop bt B end":
//
//	block bt                    ;; $exit (free)
//	  loop bt                   ;; the original loop
//	    block block block       ;; $c1 $c2 $c3 (free)
//	    B1  ;; br $loop -> br $c3: on to B2
//	    br $exit end            ;; (free) B1 fell off the end: leave
//	    B2  ;; br $loop -> br $c2
//	    br $exit end
//	    B3  ;; br $loop -> br $c1
//	    br $exit end
//	    B4  ;; br $loop -> the loop: back to B1 and the header charge
//	  end
//	end
//
// Branches in copy j to labels outside the loop cross the blocks still open
// around it and $exit: they get unrollCopies-j+1 more levels (j from 1).
//
// Unrolled: innermost loops without parameters, calls, bulk memory or table
// instructions or br_table, of at most unrollMaxInstrs instructions (ends
// and elses included). A call or a bulk instruction costs far more than a
// test (and a loop of memory.fill should reach the host at every
// iteration), a bigger body makes the test a small share of an iteration,
// and a loop around a br_table is a dispatch loop (Go's Wasm
// backend builds every resumable function as one), whose copies would
// repeat the table for nothing. The limits also bound the growth of the
// code: at most 3 x 32 instructions per loop.

const (
	unrollCopies    = 4
	unrollMaxInstrs = 32
)

// unroll returns the function body code (decoded in rw.instrs) with every
// small loop unrolled, and the offsets in the result of the instructions it
// added, which cost no fuel. It returns nil if no loop qualifies.
func (rw *rewriter) unroll(code []byte) ([]byte, []int) {
	instrs := rw.instrs
	var out []byte
	var free []int
	copied := 0 // instrs[:copied] are in out
	for i := 0; i < len(instrs); i++ {
		if instrs[i].kind != kLoop {
			continue
		}
		end, ok := rw.smallLoop(code, i)
		if !ok {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(code)+len(code)/2)
			out = append(out, code[:instrs[0].start]...) // the locals
		}
		out = append(out, code[instrs[copied].start:instrs[i].start]...)
		loop := code[instrs[i].start:instrs[i].end]
		bt := loop[1:]
		free = append(free, len(out))
		out = append(out, opBlock)
		out = append(out, bt...)
		out = append(out, loop...)
		for c := 1; c < unrollCopies; c++ {
			free = append(free, len(out))
			out = append(out, opBlock, blockEmpty)
		}
		for j := 1; j <= unrollCopies; j++ {
			out = rw.copyBody(out, code, instrs[i+1:end], uint32(unrollCopies-j+1))
			if j < unrollCopies {
				free = append(free, len(out))
				out = append(out, opBr)
				out = appendU32(out, uint32(unrollCopies-j+1))
				out = append(out, opEnd)
			}
		}
		out = append(out, opEnd, opEnd) // the loop's and $exit's
		copied = end + 1
		i = end
	}
	if out == nil {
		return nil, nil
	}
	out = append(out, code[instrs[copied].start:]...)
	return out, free
}

// smallLoop reports whether the loop at rw.instrs[i] is one unroll
// repeats, and the index of its end.
func (rw *rewriter) smallLoop(code []byte, i int) (int, bool) {
	instrs := rw.instrs
	depth := 0
	for k := i + 1; k < len(instrs) && k-i-1 <= unrollMaxInstrs; k++ {
		switch instrs[k].kind {
		case kLoop, kCall, kCallIndirect, kReturnCall, kReturnCallIndirect, kBrTable, kBulk:
			return 0, false
		case kBlock, kIf:
			depth++
		case kEnd:
			if depth == 0 {
				bt := code[instrs[i].start+1 : instrs[i].end]
				return k, rw.noParams(bt)
			}
			depth--
		}
	}
	return 0, false
}

// copyBody appends the instructions body with branches to labels outside
// the loop moved shift levels out.
func (rw *rewriter) copyBody(out, code []byte, body []instr, shift uint32) []byte {
	depth := uint32(0) // blocks open inside the body
	relabel := func(l uint32) uint32 {
		if l > depth {
			return l + shift
		}
		return l
	}
	for _, in := range body {
		b := code[in.start:in.end]
		switch in.kind {
		case kBlock, kIf:
			depth++
			out = append(out, b...)
		case kEnd:
			depth--
			out = append(out, b...)
		case kBr, kBrIf:
			out = append(out, b[0])
			out = appendU32(out, relabel(in.imm))
		case kBrTable:
			r := reader{b: b, pos: 1}
			n, _ := r.u32()
			out = append(out, b[0])
			out = appendU32(out, n)
			for k := uint64(0); k <= uint64(n); k++ {
				l, _ := r.u32()
				out = appendU32(out, relabel(l))
			}
		default:
			out = append(out, b...)
		}
	}
	return out
}
