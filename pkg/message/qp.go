package message

import "slices"

// appendQP appends src in quoted-printable (RFC 2045 §6.7), turning every
// line ending (CRLF, bare LF, bare CR) into CRLF so templates written with
// Unix line endings produce a valid message and no bare CR escapes
// (RFC 5322 §2.3).
//
// Rules applied: printable ASCII except "=" is literal (rule 2); space and
// tab are literal except before a line break or the end, where they would
// be stripped in transit (rule 3); encoded lines are at most 76 characters,
// a trailing "=" marking a soft break (rule 5). A "." starting a line is
// encoded too: harmless to decoders, and it keeps the body safe from
// transports that mishandle SMTP dot-stuffing.
func appendQP(dst, src []byte) []byte {
	dst = slices.Grow(dst, len(src)+len(src)/8+8)
	col := 0
	for i := 0; i < len(src); {
		c := src[i]
		if qpLiteral[c] && (c != '.' || col > 0) {
			// Copy a run of literal bytes at once, breaking it only where
			// the line is full; this is nearly all of a typical body.
			j := i + 1
			for j < len(src) && qpLiteral[src[j]] {
				j++
			}
			eolAfter := j == len(src) || src[j] == '\r' || src[j] == '\n'
			for i < j {
				n, room := j-i, 75-col
				if n <= room || eolAfter && n == room+1 {
					dst = append(dst, src[i:j]...)
					col += n
					i = j
					break
				}
				dst = append(dst, src[i:i+room]...)
				dst = append(dst, '=', '\r', '\n')
				i, col = i+room, 0
				if src[i] == '.' { // now starts a line: the slow path encodes it
					break
				}
			}
			continue
		}
		if c == '\r' || c == '\n' {
			if c == '\r' && i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			dst = append(dst, '\r', '\n')
			col = 0
			i++
			continue
		}
		atEOL := i+1 == len(src) || src[i+1] == '\r' || src[i+1] == '\n'
		literal := qpLiteral[c] || (c == ' ' || c == '\t') && !atEOL
		if c == '.' && col == 0 {
			literal = false
		}
		n := 3
		if literal {
			n = 1
		}
		// A line may reach 76 only when no soft-break "=" has to follow.
		limit := 75
		if atEOL {
			limit = 76
		}
		if col+n > limit {
			dst = append(dst, '=', '\r', '\n')
			col = 0
			if c == '.' { // now at the start of a line
				literal, n = false, 3
			}
		}
		if literal {
			dst = append(dst, c)
		} else {
			dst = append(dst, '=', upperHex[c>>4], upperHex[c&15])
		}
		col += n
		i++
	}
	return dst
}

// qpLiteral marks the bytes RFC 2045 §6.7 rule 2 lets stand for
// themselves anywhere: printable ASCII except "=".
var qpLiteral = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '='
	}
	return t
}()
