package fuel

import "fmt"

// kind classifies an instruction by what the rewriter must do around it.
type kind uint8

const (
	kPlain kind = iota
	kBlock
	kLoop
	kIf
	kElse
	kEnd
	kBr
	kBrIf
	kBrTable
	kReturn
	kUnreachable
	kCall
	kCallIndirect
	kReturnCall
	kReturnCallIndirect
	kRefFunc
	// kGrow: memory.grow.
	kGrow
	// kBulk: memory.init, memory.copy, memory.fill, table.init,
	// table.copy, table.grow and table.fill, whose last operand is a
	// length; imm is the 0xfc sub-opcode.
	kBulk
)

// instr is one decoded instruction: its byte range in the code and what the
// rewriter needs to know about it. Immediates other than function indices
// are never interpreted, only skipped.
type instr struct {
	start, end int
	// imm is the function index of call, return_call and ref.func, or the
	// label of br and br_if.
	imm  uint32
	kind kind
	// toFunc is set on br, br_if and br_table when a target is the label of
	// the function body itself (the branch leaves the function).
	toFunc bool
}

// unsupportedOp describes a known opcode outside the default feature set of
// wazero 1.12 (core 2.0). decodeInstr refuses these rather than guessing.
func unsupportedOp(op byte) string {
	switch op {
	case 0x06, 0x07, 0x08, 0x09, 0x0a, 0x18, 0x19, 0x1f:
		return fmt.Sprintf("opcode %#x (exception handling)", op)
	case 0x14, 0x15, 0xd3, 0xd4, 0xd5, 0xd6:
		return fmt.Sprintf("opcode %#x (typed function references)", op)
	case 0xfb:
		return "opcode prefix 0xfb (garbage collection)"
	case 0xfe:
		return "opcode prefix 0xfe (threads)"
	}
	return fmt.Sprintf("opcode %#x", op)
}

// simdInvalid marks the 0xfd sub-opcodes below 256 that are unassigned in
// the fixed-width SIMD proposal (wazero rejects them too).
var simdInvalid = map[uint32]bool{
	0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
	0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true,
	0xc6: true, 0xcf: true, 0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true,
	0xe2: true, 0xee: true,
}

// decoder decodes instructions of one expression (function body or constant
// expression). depth counts the open blocks, not counting the function body.
type decoder struct {
	r     reader
	depth int
}

// errUnsupported is returned by next for a construct the rewriter refuses;
// the caller turns it into an *UnsupportedError with position information.
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return e.what }

// next decodes one instruction. The function body's own closing end is
// reported as kEnd with depth going to -1.
func (d *decoder) next() (instr, error) {
	r := &d.r
	in := instr{start: r.pos}
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	switch {
	case op == 0x00:
		in.kind = kUnreachable
	case op == 0x01: // nop
	case op == 0x02 || op == 0x03 || op == 0x04:
		if err := d.blockType(); err != nil {
			return in, err
		}
		in.kind = [...]kind{kBlock, kLoop, kIf}[op-0x02]
		d.depth++
	case op == 0x05:
		in.kind = kElse
		if d.depth == 0 {
			return in, fmt.Errorf("else outside if")
		}
	case op == 0x0b:
		in.kind = kEnd
		d.depth--
	case op == 0x0c || op == 0x0d:
		l, err := r.u32()
		if err != nil {
			return in, err
		}
		in.imm = l
		in.kind = kBr
		if op == 0x0d {
			in.kind = kBrIf
		}
		in.toFunc = int64(l) >= int64(d.depth)
	case op == 0x0e:
		n, err := r.u32()
		if err != nil {
			return in, err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			l, err := r.u32()
			if err != nil {
				return in, err
			}
			if int64(l) >= int64(d.depth) {
				in.toFunc = true
			}
		}
		in.kind = kBrTable
	case op == 0x0f:
		in.kind = kReturn
	case op == 0x10 || op == 0x12:
		x, err := r.u32()
		if err != nil {
			return in, err
		}
		in.imm = x
		in.kind = kCall
		if op == 0x12 {
			in.kind = kReturnCall
		}
	case op == 0x11 || op == 0x13:
		if _, err := r.u32(); err != nil { // type index
			return in, err
		}
		if _, err := r.u32(); err != nil { // table index
			return in, err
		}
		in.kind = kCallIndirect
		if op == 0x13 {
			in.kind = kReturnCallIndirect
		}
	case op == 0x1a || op == 0x1b: // drop, select
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return in, err
		}
		for i := uint32(0); i < n; i++ {
			if _, err := d.valType(); err != nil {
				return in, err
			}
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		if _, err := r.u32(); err != nil {
			return in, err
		}
	case op >= 0x28 && op <= 0x3e:
		if err := d.memarg(); err != nil {
			return in, err
		}
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		if err := d.memIndex(); err != nil {
			return in, err
		}
		if op == 0x40 {
			in.kind = kGrow
		}
	case op == 0x41:
		if _, err := r.sleb(32); err != nil {
			return in, err
		}
	case op == 0x42:
		if _, err := r.sleb(64); err != nil {
			return in, err
		}
	case op == 0x43:
		if _, err := r.bytes(4); err != nil {
			return in, err
		}
	case op == 0x44:
		if _, err := r.bytes(8); err != nil {
			return in, err
		}
	case op >= 0x45 && op <= 0xc4: // numeric, incl. sign extension
	case op == 0xd0: // ref.null t
		t, err := r.byte()
		if err != nil {
			return in, err
		}
		if t != 0x70 && t != 0x6f {
			return in, errUnsupported{fmt.Sprintf("ref.null heap type %#x", t)}
		}
	case op == 0xd1: // ref.is_null
	case op == 0xd2:
		x, err := r.u32()
		if err != nil {
			return in, err
		}
		in.imm = x
		in.kind = kRefFunc
	case op == 0xfc:
		sub, err := d.prefixFC()
		if err != nil {
			return in, err
		}
		switch sub {
		case fcMemoryInit, fcMemoryCopy, fcMemoryFill, fcTableInit, fcTableCopy, fcTableGrow, fcTableFill:
			in.kind = kBulk
			in.imm = sub
		}
	case op == 0xfd:
		if err := d.prefixFD(); err != nil {
			return in, err
		}
	default:
		return in, errUnsupported{unsupportedOp(op)}
	}
	in.end = r.pos
	return in, nil
}

func (d *decoder) valType() (byte, error) {
	t, err := d.r.byte()
	if err != nil {
		return 0, err
	}
	if !isValType(t) {
		return 0, errUnsupported{fmt.Sprintf("value type %#x", t)}
	}
	return t, nil
}

func isValType(t byte) bool {
	switch t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func (d *decoder) blockType() error {
	r := &d.r
	if r.pos >= len(r.b) {
		return errTruncated
	}
	if t := r.b[r.pos]; t == 0x40 || isValType(t) {
		r.pos++
		return nil
	} else if t&0xc0 == 0x40 {
		// A one-byte negative s33 that is neither empty nor a value type:
		// a reference type from a proposal that is not enabled.
		return errUnsupported{fmt.Sprintf("block type %#x", t)}
	}
	v, err := r.sleb(33)
	if err != nil {
		return err
	}
	if v < 0 {
		return errUnsupported{fmt.Sprintf("block type %d", v)}
	}
	return nil
}

func (d *decoder) memarg() error {
	align, err := d.r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		return errUnsupported{"memory index in memarg (multiple memories)"}
	}
	_, err = d.r.uleb(64) // offset; 64 bits allows memory64 to fail in wazero, not here
	return err
}

func (d *decoder) memIndex() error {
	idx, err := d.r.u32()
	if err != nil {
		return err
	}
	if idx != 0 {
		return errUnsupported{"memory index other than 0 (multiple memories)"}
	}
	return nil
}

// 0xfc sub-opcodes of the instructions whose cost grows with a length.
const (
	fcMemoryInit = 8
	fcMemoryCopy = 10
	fcMemoryFill = 11
	fcTableInit  = 12
	fcTableCopy  = 14
	fcTableGrow  = 15
	fcTableFill  = 17
)

// prefixFC decodes the rest of an 0xfc instruction and returns its
// sub-opcode.
func (d *decoder) prefixFC() (uint32, error) {
	r := &d.r
	sub, err := r.u32()
	if err != nil {
		return 0, err
	}
	switch {
	case sub <= 7: // saturating truncation
		return sub, nil
	case sub == 8: // memory.init data mem
		if _, err := r.u32(); err != nil {
			return 0, err
		}
		return sub, d.memIndex()
	case sub == 9: // data.drop
		_, err := r.u32()
		return sub, err
	case sub == 10: // memory.copy mem mem
		if err := d.memIndex(); err != nil {
			return 0, err
		}
		return sub, d.memIndex()
	case sub == 11: // memory.fill mem
		return sub, d.memIndex()
	case sub == 12 || sub == 14: // table.init elem table, table.copy table table
		if _, err := r.u32(); err != nil {
			return 0, err
		}
		_, err := r.u32()
		return sub, err
	case sub == 13 || sub == 15 || sub == 16 || sub == 17: // elem.drop, table.grow/size/fill
		_, err := r.u32()
		return sub, err
	}
	return 0, errUnsupported{fmt.Sprintf("opcode 0xfc %d", sub)}
}

func (d *decoder) prefixFD() error {
	r := &d.r
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads, stores, load_zero
		return d.memarg()
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		_, err := r.byte()
		return err
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		if err := d.memarg(); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0xff && !simdInvalid[sub]:
		return nil
	}
	return errUnsupported{fmt.Sprintf("opcode 0xfd %#x", sub)}
}
