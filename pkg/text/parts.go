package text

import "bytes"

// IsCRLFParts is IsCRLF for a message given as pieces written in turn (a
// CRLF may straddle two of them; empty pieces are allowed). It counts
// with the vectorised bytes.Count: every CR and every LF is part of a
// CRLF exactly when the three counts agree.
func IsCRLFParts(parts [][]byte) bool {
	var cr, lf, pairs int
	var last byte
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		if last == '\r' && p[0] == '\n' {
			pairs++
		}
		cr += bytes.Count(p, []byte{'\r'})
		lf += bytes.Count(p, []byte{'\n'})
		pairs += bytes.Count(p, crlf)
		last = p[len(p)-1]
	}
	return last == '\n' && cr == lf && lf == pairs
}
