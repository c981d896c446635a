package message

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// RFC 5322 §2.1.1: a line SHOULD be at most 78 characters and MUST be at
// most 998, both excluding the CRLF.
const (
	softLimit = 78
	hardLimit = 998
)

// RFC 2047 §2: an encoded-word is at most 75 characters; "=?utf-8?q?" and
// "?=" take 12 of them.
const (
	maxWordLen   = 75
	wordOverhead = 12
)

// appendHeader appends "Name: value" CRLF, folded at whitespace (RFC 5322
// §2.2.3) so lines stay within 78 characters where the value allows it.
// Unstructured values (Subject, custom headers) that are not plain ASCII
// are written as RFC 2047 encoded-words; structured ones (addresses,
// List-Unsubscribe) are written as given. The value must not contain CR,
// LF or NUL; callers check that first so they can name the header.
func appendHeader(dst []byte, name, value string, unstructured bool) ([]byte, error) {
	value = strings.Trim(value, " \t")
	dst = append(dst, name...)
	dst = append(dst, ':')
	if unstructured && needsEncoding(value) {
		return appendEncodedWords(dst, len(name)+1, value), nil
	}
	if value == "" {
		return append(dst, '\r', '\n'), nil
	}
	dst = append(dst, ' ')
	return appendFolded(dst, len(name)+2, name, value)
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// appendFolded writes s starting at column col, inserting CRLF before a
// whitespace character whenever the line would pass 78 columns. Folding
// only ever adds CRLF in front of existing whitespace, so unfolding
// restores the value exactly; no line is left holding only whitespace
// (RFC 5322 §3.2.2) because a break needs a non-space before it.
func appendFolded(dst []byte, col int, name, s string) ([]byte, error) {
	for col+len(s) > softLimit {
		first := 0
		for first < len(s) && isWSP(s[first]) {
			first++
		}
		brk := -1
		for i := min(softLimit-col, len(s)-1); i > first; i-- {
			if isWSP(s[i]) {
				brk = i
				break
			}
		}
		if brk < 0 { // the next word is too long for 78: break after it
			for i := max(softLimit-col+1, first+1); i < len(s); i++ {
				if isWSP(s[i]) {
					brk = i
					break
				}
			}
		}
		if brk < 0 {
			break
		}
		if col+brk > hardLimit {
			return nil, fmt.Errorf("header %s has a word too long for a %d-character line", name, hardLimit)
		}
		dst = append(dst, s[:brk]...)
		dst = append(dst, '\r', '\n')
		s, col = s[brk:], 0
	}
	if col+len(s) > hardLimit {
		return nil, fmt.Errorf("header %s has a word too long for a %d-character line", name, hardLimit)
	}
	dst = append(dst, s...)
	return append(dst, '\r', '\n'), nil
}

// needsEncoding reports whether an unstructured value must be written as
// encoded-words: it has 8-bit or control characters, or it contains "=?",
// which a reader would otherwise try to decode as an encoded-word.
func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x7f || (c < ' ' && c != '\t') {
			return true
		}
	}
	return strings.Contains(s, "=?")
}

// qLen is the length of byte c in RFC 2047 Q encoding (§4.2): space
// becomes "_", printable ASCII other than "=", "?" and "_" stays, the
// rest is "=XX".
func qLen(c byte) int {
	if c == ' ' || (c > ' ' && c <= '~' && c != '=' && c != '?' && c != '_') {
		return 1
	}
	return 3
}

// appendEncodedWords writes s as a sequence of UTF-8 encoded-words, one
// per line after the first, each holding whole characters (RFC 2047 §5).
// Q keeps mostly-Latin text readable in raw form; B is used when Q would be
// over 1.5 times longer, as for scripts where every character is 8-bit.
// (mime.WordEncoder splits words too, but not knowing the column the
// header name leaves, its first word can push the line past the 76
// characters RFC 2047 §2 allows a line with encoded-words.)
func appendEncodedWords(dst []byte, col int, s string) []byte {
	q := 0
	for i := 0; i < len(s); i++ {
		q += qLen(s[i])
	}
	useB := q*2 > base64.StdEncoding.EncodedLen(len(s))*3

	budget := min(softLimit-col-1, maxWordLen)
	if budget < wordOverhead+16 { // a long header name: start on the next line
		dst = append(dst, '\r', '\n')
		budget = maxWordLen
	}
	dst = append(dst, ' ')
	for len(s) > 0 {
		room := budget - wordOverhead
		n, enc := 0, 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			var w int
			if useB {
				w = base64.StdEncoding.EncodedLen(n+size) - enc
			} else {
				for j := n; j < n+size; j++ {
					w += qLen(s[j])
				}
			}
			if enc+w > room && n > 0 {
				break
			}
			n, enc = n+size, enc+w
		}
		if useB {
			dst = append(dst, "=?utf-8?b?"...)
			dst = base64.StdEncoding.AppendEncode(dst, []byte(s[:n]))
		} else {
			dst = append(dst, "=?utf-8?q?"...)
			dst = appendQWord(dst, s[:n])
		}
		dst = append(dst, '?', '=')
		s = s[n:]
		if len(s) > 0 {
			dst = append(dst, '\r', '\n', ' ')
			budget = maxWordLen
		}
	}
	return append(dst, '\r', '\n')
}

func appendQWord(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			dst = append(dst, '_')
		case qLen(c) == 1:
			dst = append(dst, c)
		default:
			dst = append(dst, '=', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

const upperHex = "0123456789ABCDEF"
