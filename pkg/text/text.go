// Package text holds the two text helpers several packages share: CRLF
// line endings for messages and clipping of long strings for storage and
// display.
package text

import (
	"bytes"
	"unicode/utf8"
)

var crlf = []byte("\r\n")

// CRLF returns msg with every line ending in CRLF and a final CRLF, or msg
// itself when it already is: a bare CR or LF becomes CRLF. RFC 5322 §2.3
// allows no other line ending and SMTP no bare CR or LF (RFC 5321
// §2.3.8; a receiver that reads "\n.\n" as end-of-data takes the rest as
// new commands). Signing, storing and sending all use this one form, so
// the bytes signed are the bytes sent.
func CRLF(msg []byte) []byte {
	if IsCRLF(msg) {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(msg)/32+2)
	for i := 0; i < len(msg); i++ {
		switch b := msg[i]; b {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(msg) && msg[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b)
		}
	}
	if !bytes.HasSuffix(out, crlf) {
		out = append(out, crlf...)
	}
	return out
}

// IsCRLF reports whether every CR is followed by LF, every LF is preceded
// by CR, and msg ends in CRLF. It jumps between line ends with IndexByte,
// so a clean message costs little more than a memchr.
func IsCRLF(msg []byte) bool {
	if !bytes.HasSuffix(msg, crlf) {
		return false
	}
	for i := 0; ; {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		if j == 0 || msg[i+j-1] != '\r' {
			return false
		}
		// No CR inside the line other than the one ending it.
		if bytes.IndexByte(msg[i:i+j-1], '\r') >= 0 {
			return false
		}
		i += j + 1
	}
	return true
}

// Clip returns s cut to at most n bytes, ending in "…" when anything was
// cut, without splitting a UTF-8 sequence.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
