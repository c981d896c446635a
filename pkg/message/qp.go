package message

import (
	"bytes"
	"mime/quotedprintable"
)

// appendQP appends src in quoted-printable (RFC 2045 §6.7) with the
// standard library's encoder, which encodes whitespace before a line break
// (rule 3), keeps encoded lines within 76 characters (rule 5) and writes
// every line break as CRLF, so templates written with Unix line endings
// produce a valid message and no bare CR escapes (RFC 5322 §2.3).
//
// Line endings are folded to LF first: the encoder keeps "just saw CR"
// state across encoded bytes, so a bare CR, then an encoded byte, then LF
// would lose that LF (TestQPRoundTrip finds it).
func appendQP(dst, src []byte) []byte {
	if bytes.IndexByte(src, '\r') >= 0 {
		src = foldCR(src)
	}
	w := quotedprintable.NewWriter((*appender)(&dst))
	_, _ = w.Write(src) // appending to a slice cannot fail
	_ = w.Close()
	return dst
}

// foldCR turns CRLF and bare CR into LF.
func foldCR(src []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
}

// appender is an io.Writer that appends to a byte slice.
type appender []byte

func (a *appender) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}
