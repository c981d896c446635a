package text

import "bytes"

// IsCRLFParts is IsCRLF for a message given as pieces written in turn (a
// CRLF may straddle two of them; empty pieces are allowed). Every LF must
// follow a CR, and there must be as many CRs as LFs: then each CR is one
// of those, and none stands alone.
func IsCRLFParts(parts [][]byte) bool {
	var cr, lf int
	var last byte // the last byte of the pieces so far
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		cr += bytes.Count(p, []byte{'\r'})
		for i := 0; ; {
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				break
			}
			k := i + j
			before := last
			if k > 0 {
				before = p[k-1]
			}
			if before != '\r' {
				return false
			}
			lf++
			i = k + 1
		}
		last = p[len(p)-1]
	}
	return last == '\n' && cr == lf
}
