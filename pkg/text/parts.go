package text

import "encoding/binary"

// IsCRLFParts is IsCRLF for a message given as pieces written in turn (a
// CRLF may straddle two of them; empty pieces are allowed). It looks at
// eight bytes at a time: in canonical text the LF bytes of a word are
// exactly its CR bytes moved up by one (carrying a CR from the word
// before), which a few word operations check.
func IsCRLFParts(parts [][]byte) bool {
	var carry uint64 // 0x80 when the byte before was CR
	var last byte
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		last = p[len(p)-1]
		for len(p) >= 8 {
			w := binary.LittleEndian.Uint64(p)
			cr, lf := zeroBytes(w^crs), zeroBytes(w^lfs)
			if lf != cr<<8|carry {
				return false
			}
			carry = cr >> 56
			p = p[8:]
		}
		for _, c := range p {
			if (c == '\n') != (carry != 0) {
				return false
			}
			carry = 0
			if c == '\r' {
				carry = 0x80
			}
		}
	}
	return carry == 0 && last == '\n'
}

const (
	ones = 0x0101010101010101
	crs  = '\r' * ones
	lfs  = '\n' * ones
	low7 = 0x7f7f7f7f7f7f7f7f
)

// zeroBytes has the high bit of each byte of w that is zero set, and no
// other bit.
func zeroBytes(w uint64) uint64 { return ^((w&low7 + low7) | w | low7) }
