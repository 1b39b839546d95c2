package fuel

import (
	"errors"
	"fmt"
)

// errTruncated is returned by reader methods when input ends early or an
// integer encoding is too long. Callers wrap it with ErrMalformed context.
var errTruncated = errors.New("unexpected end or overlong integer")

// reader walks a byte slice. Every method checks bounds, so malformed input
// produces errors, never panics.
type reader struct {
	b   []byte
	pos int
}

func (r *reader) eof() bool { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.pos) {
		return nil, errTruncated
	}
	s := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s, nil
}

// u32 reads an unsigned LEB128 value of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

func (r *reader) uleb(bits uint) (uint64, error) {
	var v uint64
	var shift uint
	maxBytes := int((bits + 6) / 7)
	for i := 0; ; i++ {
		if i >= maxBytes {
			return 0, errTruncated
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == maxBytes-1 && bits%7 != 0 && c&0x7f>>(bits%7) != 0 {
			return 0, errTruncated
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
		shift += 7
	}
}

// sleb skips a signed LEB128 value of at most bits bits and returns it.
func (r *reader) sleb(bits uint) (int64, error) {
	var v int64
	var shift uint
	maxBytes := int((bits + 6) / 7)
	for i := 0; ; i++ {
		if i >= maxBytes {
			return 0, errTruncated
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(uint64(n))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func appendU32(b []byte, v uint32) []byte { return appendU64(b, uint64(v)) }

func appendU64(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func malformed(where string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, where, err)
}
