package fuel

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument feeds the fixtures and mutations of them to Instrument:
// it never panics, refuses with one of its documented errors, refuses a
// module wazero accepts only as unsupported or already instrumented, and
// turns every module wazero accepts into one wazero accepts too,
// importing the refill function.
func FuzzInstrument(f *testing.F) {
	for _, name := range fixtures(f) {
		f.Add(fixture(f, name))
	}
	f.Add(atomicModule)
	ctx := context.Background()
	// The interpreter validates exactly as the compiler does, faster.
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(withTailCalls))
	f.Cleanup(func() { _ = r.Close(ctx) })
	valid := func(b []byte) error {
		cm, err := r.CompileModule(ctx, b)
		if err == nil {
			_ = cm.Close(ctx)
		}
		return err
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Instrument(in, Options{})
		if err != nil {
			var u *UnsupportedError
			if errors.As(err, &u) || errors.Is(err, ErrInstrumented) {
				// Both refuse modules wazero may accept.
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("undocumented error: %v", err)
			}
			// wazero's decoder allocates by declared counts and runs out
			// of memory on a few bytes claiming billions of entries: such
			// input is malformed, as refused, and not given to it.
			if countTooBig(in) || nameSectionTooBig(in) {
				return
			}
			if valid(in) == nil {
				t.Fatalf("module wazero accepts refused as malformed: %v", err)
			}
			return
		}
		if nameSectionTooBig(in) {
			// Instrument drops the name subsections it cannot parse, so
			// the output is fine, but wazero would allocate gigabytes
			// decoding the input: not a rewriter question.
			t.Skip("name section declares more entries or bytes than the module has")
		}
		inErr := valid(in)
		outErr := valid(out)
		if inErr == nil && outErr != nil {
			t.Fatalf("valid module instrumented into an invalid one: %v", outErr)
		}
		if outErr == nil {
			cm, err := r.CompileModule(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			defer cm.Close(ctx)
			found := false
			for _, d := range cm.ImportedFunctions() {
				if m, n, _ := d.Import(); m == HostModuleName && n == RefillName {
					found = true
				}
			}
			if !found {
				t.Fatal("output does not import refill")
			}
		}
	})
}

// maxCount bounds the LEB128 numbers of an input given to wazero.
const maxCount = 1 << 22

// countTooBig reports whether b may make wazero allocate gigabytes:
// wazero decodes counts and lengths (of vectors, names, parameters,
// data, function bodies and their locals) by allocating by them before
// reading what they count. It reports true when a function declares more
// than a million locals or a body longer than the rest of b, or when any
// LEB128 number outside the function bodies' instructions exceeds
// maxCount: wazero refuses such counts, the rewriter refuses so many
// locals, and this leaves unchecked only refused modules holding such a
// number.
func countTooBig(b []byte) bool {
	// code holds the instruction ranges of the function bodies.
	var code [][2]int
	r := reader{b: b, pos: min(8, len(b))}
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			break
		}
		size, err := r.u32()
		if err != nil {
			break
		}
		// wazero reads a section that claims more bytes than are left
		// on to the end of b.
		start := r.pos
		end := len(b)
		if uint64(size) < uint64(end-start) {
			end = start + int(size)
		}
		r.pos = end
		if id != 10 {
			continue
		}
		s := reader{b: b[:end], pos: start}
		n, err := s.u32()
		if err != nil {
			continue
		}
		for range min(n, maxCount) {
			size, err := s.u32()
			if err != nil {
				break
			}
			if uint64(size) > uint64(len(s.b)-s.pos) {
				return true
			}
			next := s.pos + int(size)
			groups, err := s.u32()
			if err != nil {
				break
			}
			var sum uint64
			for range min(groups, maxCount) {
				c, err := s.u32()
				if err != nil {
					break
				}
				sum += uint64(c)
				if _, err := s.byte(); err != nil {
					break
				}
			}
			if sum > 1<<20 {
				return true
			}
			if s.pos < next {
				code = append(code, [2]int{s.pos, next})
			}
			s.pos = max(s.pos, next)
		}
	}
	for i := 0; i < len(b); i++ {
		if len(code) > 0 && i >= code[0][0] {
			i = code[0][1] - 1
			code = code[1:]
			continue
		}
		var v uint64
		for j := 0; j < 5 && i+j < len(b); j++ {
			v |= uint64(b[i+j]&0x7f) << (7 * j)
			if b[i+j]&0x80 == 0 {
				break
			}
		}
		if v > maxCount {
			return true
		}
	}
	return false
}

// nameSectionTooBig reports whether b has a "name" custom section that
// declares a count or a string length larger than b itself. wazero 1.12
// decodes that section by allocating by the declared count before reading
// (a few bytes claiming a billion names took 2.4 GB and killed the fuzzer),
// reading on past subsection boundaries; this walks it the same way.
func nameSectionTooBig(b []byte) bool {
	limit := uint64(len(b))
	r := reader{b: b, pos: min(8, len(b))}
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			return false
		}
		size, err := r.u32()
		if err != nil {
			return false
		}
		body, err := r.bytes(uint64(size))
		if err != nil {
			return false
		}
		s := reader{b: body}
		if name, err := s.name(); id != 0 || err != nil || name != "name" {
			continue
		}
		// Each read: false on a decoding error (wazero stops there too),
		// true on a count or length over limit.
		count := func() (uint32, bool) {
			n, err := s.u32()
			return n, err == nil && uint64(n) <= limit
		}
		str := func() bool {
			n, ok := count()
			if ok {
				_, err := s.bytes(uint64(n))
				ok = err == nil
			}
			return ok
		}
		tooBig := func() bool {
			n, err := s.u32()
			return err == nil && uint64(n) > limit
		}
		for !s.eof() {
			sub, _ := s.byte()
			subSize, err := s.u32()
			if err != nil {
				break
			}
			switch sub {
			case 0:
				p := s.pos
				if !str() {
					s.pos = p
					return tooBig()
				}
			case 1, 2:
				p := s.pos
				n, ok := count()
				if !ok {
					s.pos = p
					return tooBig()
				}
				for i := uint32(0); i < n; i++ {
					if _, err := s.u32(); err != nil {
						return false
					}
					if sub == 1 {
						p = s.pos
						if !str() {
							s.pos = p
							return tooBig()
						}
						continue
					}
					p = s.pos
					m, ok := count()
					if !ok {
						s.pos = p
						return tooBig()
					}
					for j := uint32(0); j < m; j++ {
						if _, err := s.u32(); err != nil {
							return false
						}
						p = s.pos
						if !str() {
							s.pos = p
							return tooBig()
						}
					}
				}
			default:
				if _, err := s.bytes(uint64(subSize)); err != nil {
					return false
				}
			}
		}
	}
	return false
}
