package fuel

import (
	"bytes"
	"errors"
	"fmt"
)

// Names of the host function every instrumented module imports.
const (
	// HostModuleName is the import module name of the refill function.
	HostModuleName = "bulkhead:fuel/v1"
	// RefillName is the import name of the refill function, of type
	// (i64) -> i64. See Refill for its protocol.
	RefillName = "refill"
)

// Options tunes Instrument. The zero value is the default.
type Options struct {
	// DropNames removes the "name" custom section. By default it is kept,
	// with its function indices shifted to match the rewritten module (a
	// name section that does not parse is dropped). Other custom sections
	// are always copied as they are.
	DropNames bool

	// MaxStack bounds the call stack, in bytes as charged per frame (see
	// FrameCost); 0 means DefaultMaxStack. The bound is baked into the
	// output: a cache of instrumented modules must key on it.
	MaxStack int64

	noUnroll bool // tests: the plain form, for comparing counts (see unroll)
	noStack  bool // benchmarks: no stack bound, for comparing speed
}

// Call stack bounds (see Options.MaxStack).
const (
	// DefaultMaxStack is the call stack bound when Options.MaxStack is 0.
	DefaultMaxStack int64 = 4 << 20
	// MaxMaxStack is the largest bound Instrument accepts (the stack
	// counter is an i32).
	MaxMaxStack int64 = 1 << 30
)

// FrameCost is what one call of a function takes from the stack bound until
// it returns, where n counts its parameters and locals and (an upper bound
// on) the operand stack values a call in it needs (those under the call's
// arguments, which stay live across it, and its arguments and results):
// 64 + 16n bytes, at or above what wazero's compiled frames of instrumented
// functions measured (about 55 bytes without locals, 71 with four
// parameters, 164 with sixteen i64 locals kept across the call, 790 with
// 100 values left on the operand stack across the call).
func FrameCost(n uint64) int64 { return 64 + 16*int64(n) }

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// rank is the position a section must have in a module (custom sections
// excepted).
func rank(id byte) int {
	switch id {
	case secDataCount:
		return 10
	case secCode:
		return 11
	case secData:
		return 12
	}
	return int(id)
}

type section struct {
	id    byte
	body  []byte
	start int // offset of body in the input
}

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// module is the part of a decoded module the rewriter needs.
type module struct {
	sections  []section
	types     [][]byte // raw entries
	typeParam []uint32
	// typeResult is the result count of each type; funcType the type of
	// each function, imported ones first.
	typeResult []uint32
	funcType   []uint32
	nFuncImp   uint32
	nGlobImp   uint32
	funcTypes  []uint32 // type index of each defined function
	nGlobals   uint32   // defined globals
	// wrapperNames names each export wrapper (in order) after the first
	// export that points at it, for the name section.
	wrapperNames []string
}

// Instrument rewrites a binary Wasm module so that it meters its own
// execution: see the package documentation for what changes. It returns
// ErrMalformed (wrapped) for input that is not a well-formed module,
// ErrInstrumented for a module that already imports the refill function and
// *UnsupportedError for a module using features the rewriter does not meter.
// The input is not modified.
func Instrument(wasm []byte, opts Options) ([]byte, error) {
	if opts.MaxStack == 0 {
		opts.MaxStack = DefaultMaxStack
	}
	if opts.MaxStack < 0 || opts.MaxStack > MaxMaxStack {
		return nil, fmt.Errorf("fuel: max stack %d out of range (0 to %d)", opts.MaxStack, MaxMaxStack)
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], wasmHeader) {
		return nil, fmt.Errorf("%w: not a Wasm 1.0 binary module", ErrMalformed)
	}
	m := &module{}
	r := reader{b: wasm, pos: 8}
	last := 0
	for !r.eof() {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, malformed("section header", err)
		}
		start := r.pos
		body, err := r.bytes(uint64(size))
		if err != nil {
			return nil, malformed(fmt.Sprintf("section %d", id), err)
		}
		if id > secDataCount {
			return nil, &UnsupportedError{Func: -1, Offset: start, What: fmt.Sprintf("section id %d", id)}
		}
		if id != secCustom {
			if rank(id) <= last {
				return nil, fmt.Errorf("%w: section %d out of order or repeated", ErrMalformed, id)
			}
			last = rank(id)
		}
		m.sections = append(m.sections, section{id: id, body: body, start: start})
	}
	return m.rewrite(opts)
}

func (m *module) find(id byte) *section {
	for i := range m.sections {
		if m.sections[i].id == id {
			return &m.sections[i]
		}
	}
	return nil
}

// maxLocals bounds the locals of one function (V8 has the same limit):
// wazero allocates per declared local, so a few bytes of input could ask it
// for gigabytes.
const maxLocals = 50000

// checkCounts rejects a copied section whose vector count exceeds its size
// (every entry takes at least one byte), so that no count in the output
// asks wazero to allocate more than the input's size.
func (m *module) checkCounts() error {
	for _, s := range m.sections {
		switch s.id {
		case secTable, secMemory, secData:
			r := reader{b: s.body}
			n, err := r.u32()
			if err != nil {
				return malformed(fmt.Sprintf("section %d", s.id), err)
			}
			if uint64(n) > uint64(len(s.body)) {
				return fmt.Errorf("%w: section %d: count %d exceeds its size", ErrMalformed, s.id, n)
			}
		}
	}
	return nil
}

func (m *module) rewrite(opts Options) ([]byte, error) {
	if err := m.checkCounts(); err != nil {
		return nil, err
	}
	if err := m.readTypes(); err != nil {
		return nil, err
	}
	imports, err := m.readImports()
	if err != nil {
		return nil, err
	}
	if err := m.readFunctions(); err != nil {
		return nil, err
	}
	globals, err := m.rewriteGlobals()
	if err != nil {
		return nil, err
	}

	refillType := uint32(len(m.types))
	refill := m.nFuncImp
	counter := m.nGlobImp + m.nGlobals
	remap := func(x uint32) uint32 {
		if x >= refill {
			return x + 1
		}
		return x
	}
	nDefined := uint32(len(m.funcTypes))

	// Sections that change.
	newSec := map[byte][]byte{}

	types := appendU32(nil, refillType+1)
	for _, t := range m.types {
		types = append(types, t...)
	}
	types = append(types, 0x60, 1, typeI64, 1, typeI64)
	newSec[secType] = types

	imports = appendName(imports, HostModuleName)
	imports = appendName(imports, RefillName)
	imports = append(imports, 0x00)
	imports = appendU32(imports, refillType)
	newSec[secImport] = imports

	globals = append(globals, typeI64, 0x01, opI64Const, 0, opEnd)
	globals = append(globals, typeI32, 0x01, opI32Const)
	globals = append(appendS64(globals, opts.MaxStack), opEnd)
	newSec[secGlobal] = append(appendU32(nil, m.nGlobals+2), globals...)

	firstWrapper := refill + 1 + nDefined
	exports, wrapped, err := m.rewriteExports(remap, firstWrapper)
	if err != nil {
		return nil, err
	}
	if exports != nil {
		newSec[secExport] = exports
	}

	funcs := appendU32(nil, nDefined+uint32(len(wrapped)))
	for _, t := range m.funcTypes {
		funcs = appendU32(funcs, t)
	}
	for _, w := range wrapped {
		funcs = appendU32(funcs, m.funcTypes[w-m.nFuncImp])
	}
	if len(m.funcTypes)+len(wrapped) > 0 {
		newSec[secFunction] = funcs
	}

	if s := m.find(secStart); s != nil {
		r := reader{b: s.body}
		x, err := r.u32()
		if err != nil || !r.eof() {
			return nil, fmt.Errorf("%w: start section", ErrMalformed)
		}
		newSec[secStart] = appendU32(nil, remap(x))
	}
	if s := m.find(secElement); s != nil {
		b, err := rewriteElements(s, remap)
		if err != nil {
			return nil, err
		}
		newSec[secElement] = b
	}

	rw := &rewriter{refill: refill, counter: counter, stack: counter + 1, maxStack: opts.MaxStack,
		remap: remap, typeParam: m.typeParam, typeResult: m.typeResult, funcType: append(m.funcType, m.funcTypes...),
		noUnroll: opts.noUnroll, noStack: opts.noStack}
	code, err := m.rewriteCode(rw, wrapped)
	if err != nil {
		return nil, err
	}
	if code != nil {
		newSec[secCode] = code
	}

	// Emit: replaced sections in place, new ones at their rank.
	out := make([]byte, 0, len(m.sections)*16+sizeOf(m.sections)*5/4+64)
	out = append(out, wasmHeader...)
	emitted := map[byte]bool{}
	emitNew := func(upTo int) {
		for id := byte(1); id <= secDataCount; id++ {
			if b, ok := newSec[id]; ok && !emitted[id] && rank(id) < upTo {
				out = appendSection(out, id, b)
				emitted[id] = true
			}
		}
	}
	for _, s := range m.sections {
		if s.id == secCustom {
			b, keep := m.rewriteCustom(s, opts, remap, firstWrapper)
			if keep {
				out = appendSection(out, secCustom, b)
			}
			continue
		}
		emitNew(rank(s.id))
		if b, ok := newSec[s.id]; ok {
			out = appendSection(out, s.id, b)
			emitted[s.id] = true
			continue
		}
		out = appendSection(out, s.id, s.body)
	}
	emitNew(1 << 30)
	return out, nil
}

func sizeOf(ss []section) int {
	n := 0
	for _, s := range ss {
		n += len(s.body)
	}
	return n
}

func appendSection(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(body)))
	return append(out, body...)
}

func (m *module) readTypes() error {
	s := m.find(secType)
	if s == nil {
		return nil
	}
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return malformed("type section", err)
	}
	for i := uint32(0); i < n; i++ {
		start := r.pos
		form, err := r.byte()
		if err != nil {
			return malformed("type section", err)
		}
		if form != 0x60 {
			return &UnsupportedError{Func: -1, Offset: s.start + start, What: fmt.Sprintf("type form %#x", form)}
		}
		var params uint32
		for j := 0; j < 2; j++ {
			k, err := r.u32()
			if err != nil {
				return malformed("type section", err)
			}
			if j == 0 {
				params = k
			} else {
				m.typeResult = append(m.typeResult, k)
			}
			for v := uint32(0); v < k; v++ {
				t, err := r.byte()
				if err != nil {
					return malformed("type section", err)
				}
				if !isValType(t) {
					return &UnsupportedError{Func: -1, Offset: s.start + r.pos - 1, What: fmt.Sprintf("value type %#x", t)}
				}
			}
		}
		m.types = append(m.types, r.b[start:r.pos])
		m.typeParam = append(m.typeParam, params)
		if len(m.types) > 1<<20 {
			return fmt.Errorf("%w: too many types", ErrMalformed)
		}
	}
	if !r.eof() {
		return fmt.Errorf("%w: type section: trailing bytes", ErrMalformed)
	}
	return nil
}

// readImports counts imported functions and globals and returns the import
// section's entries (count re-encoded for one more entry).
func (m *module) readImports() ([]byte, error) {
	s := m.find(secImport)
	if s == nil {
		return appendU32(nil, 1), nil
	}
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return nil, malformed("import section", err)
	}
	entriesStart := r.pos
	for i := uint32(0); i < n; i++ {
		mod, err := r.name()
		if err != nil {
			return nil, malformed("import section", err)
		}
		if _, err := r.name(); err != nil {
			return nil, malformed("import section", err)
		}
		if mod == HostModuleName {
			return nil, ErrInstrumented
		}
		kind, err := r.byte()
		if err != nil {
			return nil, malformed("import section", err)
		}
		switch kind {
		case 0:
			t, err := r.u32()
			if err != nil {
				return nil, malformed("import section", err)
			}
			if int(t) >= len(m.types) {
				return nil, fmt.Errorf("%w: import of unknown type %d", ErrMalformed, t)
			}
			m.funcType = append(m.funcType, t)
			m.nFuncImp++
		case 1:
			if _, err := r.byte(); err != nil {
				return nil, malformed("import section", err)
			}
			err = readLimits(&r, s.start)
		case 2:
			err = readLimits(&r, s.start)
		case 3:
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
			m.nGlobImp++
		default:
			return nil, &UnsupportedError{Func: -1, Offset: s.start + r.pos - 1, What: fmt.Sprintf("import kind %d", kind)}
		}
		if err != nil {
			var u *UnsupportedError
			if errors.As(err, &u) {
				return nil, err
			}
			return nil, malformed("import section", err)
		}
	}
	if !r.eof() {
		return nil, fmt.Errorf("%w: import section: trailing bytes", ErrMalformed)
	}
	out := appendU32(nil, n+1)
	return append(out, s.body[entriesStart:]...), nil
}

func readLimits(r *reader, base int) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if flag > 3 {
		return &UnsupportedError{Func: -1, Offset: base + r.pos - 1, What: fmt.Sprintf("limits flag %#x (memory64)", flag)}
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flag&1 != 0 {
		_, err = r.u32()
	}
	return err
}

func (m *module) readFunctions() error {
	s := m.find(secFunction)
	if s == nil {
		return nil
	}
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return malformed("function section", err)
	}
	if uint64(n) > uint64(len(s.body)) {
		return fmt.Errorf("%w: function section: count %d too large", ErrMalformed, n)
	}
	for i := uint32(0); i < n; i++ {
		t, err := r.u32()
		if err != nil {
			return malformed("function section", err)
		}
		if int(t) >= len(m.types) {
			return fmt.Errorf("%w: function of unknown type %d", ErrMalformed, t)
		}
		m.funcTypes = append(m.funcTypes, t)
	}
	if !r.eof() {
		return fmt.Errorf("%w: function section: trailing bytes", ErrMalformed)
	}
	return nil
}

// rewriteGlobals returns the global section's entries (without count) with
// ref.func indices shifted.
func (m *module) rewriteGlobals() ([]byte, error) {
	s := m.find(secGlobal)
	if s == nil {
		return nil, nil
	}
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return nil, malformed("global section", err)
	}
	remap := func(x uint32) uint32 {
		if x >= m.nFuncImp {
			return x + 1
		}
		return x
	}
	var out []byte
	for i := uint32(0); i < n; i++ {
		hdr, err := r.bytes(2) // value type, mutability
		if err != nil {
			return nil, malformed("global section", err)
		}
		if !isValType(hdr[0]) {
			return nil, &UnsupportedError{Func: -1, Offset: s.start + r.pos - 2, What: fmt.Sprintf("value type %#x", hdr[0])}
		}
		out = append(out, hdr...)
		if out, err = constExpr(out, &r, s.start, remap); err != nil {
			return nil, err
		}
	}
	if !r.eof() {
		return nil, fmt.Errorf("%w: global section: trailing bytes", ErrMalformed)
	}
	m.nGlobals = n
	return out, nil
}

// constExpr copies a constant expression from r to out, shifting ref.func.
func constExpr(out []byte, r *reader, base int, remap func(uint32) uint32) ([]byte, error) {
	d := decoder{r: *r}
	for {
		in, err := d.next()
		if err != nil {
			var u errUnsupported
			if errors.As(err, &u) {
				return nil, &UnsupportedError{Func: -1, Offset: base + in.start, What: u.what}
			}
			return nil, malformed(fmt.Sprintf("constant expression at offset %#x", base+in.start), err)
		}
		if in.kind == kRefFunc {
			out = append(out, d.r.b[in.start])
			out = appendU32(out, remap(in.imm))
		} else {
			out = append(out, d.r.b[in.start:in.end]...)
		}
		if d.depth < 0 {
			break
		}
	}
	r.pos = d.r.pos
	return out, nil
}

// rewriteExports shifts function indices, points each export of a defined
// function at an entry wrapper (numbered from firstWrapper) and returns the
// new section, and the remapped indices of the wrapped functions in order.
func (m *module) rewriteExports(remap func(uint32) uint32, firstWrapper uint32) ([]byte, []uint32, error) {
	s := m.find(secExport)
	if s == nil {
		return nil, nil, nil
	}
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return nil, nil, malformed("export section", err)
	}
	out := appendU32(nil, n)
	var wrapped []uint32
	wrapperOf := map[uint32]uint32{}
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return nil, nil, malformed("export section", err)
		}
		kind, err := r.byte()
		if err != nil {
			return nil, nil, malformed("export section", err)
		}
		x, err := r.u32()
		if err != nil {
			return nil, nil, malformed("export section", err)
		}
		if kind > 3 {
			return nil, nil, &UnsupportedError{Func: -1, Offset: s.start + r.pos, What: fmt.Sprintf("export kind %d", kind)}
		}
		if kind == 0 && x >= m.nFuncImp {
			if int64(x)-int64(m.nFuncImp) >= int64(len(m.funcTypes)) {
				return nil, nil, fmt.Errorf("%w: export of unknown function %d", ErrMalformed, x)
			}
			w, ok := wrapperOf[x]
			if !ok {
				w = firstWrapper + uint32(len(wrapped))
				wrapperOf[x] = w
				wrapped = append(wrapped, x)
				m.wrapperNames = append(m.wrapperNames, name)
			}
			x = w
		} else if kind == 0 {
			x = remap(x)
		}
		out = appendName(out, name)
		out = append(out, kind)
		out = appendU32(out, x)
	}
	if !r.eof() {
		return nil, nil, fmt.Errorf("%w: export section: trailing bytes", ErrMalformed)
	}
	return out, wrapped, nil
}

func rewriteElements(s *section, remap func(uint32) uint32) ([]byte, error) {
	r := reader{b: s.body}
	n, err := r.u32()
	if err != nil {
		return nil, malformed("element section", err)
	}
	out := appendU32(nil, n)
	bad := func(err error) error { return malformed("element section", err) }
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, bad(err)
		}
		if flags > 7 {
			return nil, fmt.Errorf("%w: element segment flags %d", ErrMalformed, flags)
		}
		out = appendU32(out, flags)
		if flags == 2 || flags == 6 { // explicit table index
			t, err := r.u32()
			if err != nil {
				return nil, bad(err)
			}
			out = appendU32(out, t)
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = constExpr(out, &r, s.start, remap); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype byte
			b, err := r.byte()
			if err != nil {
				return nil, bad(err)
			}
			out = append(out, b)
		}
		k, err := r.u32()
		if err != nil {
			return nil, bad(err)
		}
		if uint64(k) > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: element segment: count %d too large", ErrMalformed, k)
		}
		out = appendU32(out, k)
		for j := uint32(0); j < k; j++ {
			if flags&4 == 0 {
				x, err := r.u32()
				if err != nil {
					return nil, bad(err)
				}
				out = appendU32(out, remap(x))
			} else if out, err = constExpr(out, &r, s.start, remap); err != nil {
				return nil, err
			}
		}
	}
	if !r.eof() {
		return nil, fmt.Errorf("%w: element section: trailing bytes", ErrMalformed)
	}
	return out, nil
}

// rewriteCode instruments every body and appends one entry wrapper per
// wrapped export. It returns nil if the module has no code at all.
func (m *module) rewriteCode(rw *rewriter, wrapped []uint32) ([]byte, error) {
	s := m.find(secCode)
	var n uint32
	r := reader{}
	if s != nil {
		r.b = s.body
		var err error
		if n, err = r.u32(); err != nil {
			return nil, malformed("code section", err)
		}
	}
	if int(n) != len(m.funcTypes) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrMalformed, n, len(m.funcTypes))
	}
	if n == 0 && len(wrapped) == 0 {
		if s == nil {
			return nil, nil
		}
		return s.body, nil
	}
	out := make([]byte, 0, len(r.b)*5/4+64)
	out = appendU32(out, n+uint32(len(wrapped)))
	var buf []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, malformed("code section", err)
		}
		start := r.pos
		code, err := r.bytes(uint64(size))
		if err != nil {
			return nil, malformed("code section", err)
		}
		rw.funcIndex = int(m.nFuncImp + i)
		rw.base = s.start + start
		buf, err = rw.body(buf[:0], code, m.typeParam[m.funcTypes[i]])
		if err != nil {
			return nil, err
		}
		out = appendU32(out, uint32(len(buf)))
		out = append(out, buf...)
	}
	if !r.eof() {
		return nil, fmt.Errorf("%w: code section: trailing bytes", ErrMalformed)
	}
	for _, f := range wrapped {
		buf = rw.wrapper(buf[:0], rw.remap(f), m.typeParam[m.funcTypes[f-m.nFuncImp]])
		out = appendU32(out, uint32(len(buf)))
		out = append(out, buf...)
	}
	return out, nil
}

// wrapper emits the body of an export's entry wrapper:
//
//	i32.const maxStack; global.set $stack
//	i64.const 0; global.set $counter
//	local.get 0 ... local.get n-1; call $f
//	global.get $counter; call $refill; drop
//
// Setting $stack gives every call from the host the whole stack bound.
// Zeroing the counter makes the first charge of every call from the host
// ask the host (which checks the context and starts the call's budget);
// handing the counter to refill on the way out, as a non-negative value,
// lets the host settle the fuel the call used.
func (rw *rewriter) wrapper(out []byte, f, nParams uint32) []byte {
	out = append(out, 0) // no locals
	if !rw.noStack {
		out = append(out, opI32Const)
		out = appendS64(out, rw.maxStack)
		out = appendOp(out, opGlobalSet, rw.stack)
	}
	out = append(out, opI64Const, 0, opGlobalSet)
	out = appendU32(out, rw.counter)
	for i := uint32(0); i < nParams; i++ {
		out = append(out, opLocalGet)
		out = appendU32(out, i)
	}
	out = append(out, opCall)
	out = appendU32(out, f)
	out = append(out, opGlobalGet)
	out = appendU32(out, rw.counter)
	out = append(out, opCall)
	out = appendU32(out, rw.refill)
	return append(out, opDrop, opEnd)
}

// rewriteCustom shifts function indices in the "name" section (or drops
// it, by option or if it does not parse) and keeps other custom sections.
func (m *module) rewriteCustom(s section, opts Options, remap func(uint32) uint32, firstWrapper uint32) ([]byte, bool) {
	r := reader{b: s.body}
	name, err := r.name()
	if err != nil || name != "name" {
		return s.body, true
	}
	if opts.DropNames {
		return nil, false
	}
	out := append([]byte(nil), s.body[:r.pos]...)
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			return nil, false
		}
		size, err := r.u32()
		if err != nil {
			return nil, false
		}
		sub, err := r.bytes(uint64(size))
		if err != nil {
			return nil, false
		}
		switch id {
		case 0: // module name: wazero reads it ignoring the size
			sr := reader{b: sub}
			if _, err := sr.name(); err != nil || !sr.eof() {
				return nil, false
			}
		case 1, 2, 3: // function names, local names, label names
			b, ok := rewriteNameMap(sub, id != 1, remap)
			if !ok {
				return nil, false
			}
			sub = b
			if id == 1 && len(m.wrapperNames) > 0 {
				sub = m.nameWrappers(sub, firstWrapper)
			}
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, true
}

// nameWrappers appends the wrappers, whose indices are above every other
// function's, to a function name map (which must stay sorted by index).
func (m *module) nameWrappers(sub []byte, firstWrapper uint32) []byte {
	r := reader{b: sub}
	n, _ := r.u32() // parsed successfully by rewriteNameMap
	out := appendU32(nil, n+uint32(len(m.wrapperNames)))
	out = append(out, sub[r.pos:]...)
	for i, name := range m.wrapperNames {
		out = appendU32(out, firstWrapper+uint32(i))
		out = appendName(out, name+".fuel")
	}
	return out
}

// rewriteNameMap shifts the function indices of a name map (indirect: the
// values are themselves name maps, copied as they are).
func rewriteNameMap(b []byte, indirect bool, remap func(uint32) uint32) ([]byte, bool) {
	r := reader{b: b}
	n, err := r.u32()
	if err != nil {
		return nil, false
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		x, err := r.u32()
		if err != nil {
			return nil, false
		}
		out = appendU32(out, remap(x))
		start := r.pos
		if indirect {
			k, err := r.u32()
			if err != nil {
				return nil, false
			}
			for j := uint32(0); j < k; j++ {
				if _, err := r.u32(); err != nil {
					return nil, false
				}
				if _, err := r.name(); err != nil {
					return nil, false
				}
			}
		} else if _, err := r.name(); err != nil {
			return nil, false
		}
		out = append(out, b[start:r.pos]...)
	}
	if !r.eof() {
		return nil, false
	}
	return out, true
}
