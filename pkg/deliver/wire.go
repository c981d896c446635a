package deliver

import (
	"bufio"
	"bytes"
	"encoding/binary"
)

var (
	crlf     = []byte("\r\n")
	lfDot    = []byte("\n.")
	endOfMsg = []byte(".\r\n")
)

// has8bit reports whether any byte has the high bit set, eight bytes at a
// time.
func has8bit(b []byte) bool {
	const high = 0x8080808080808080
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&high != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// header returns the header section of a canonical message (up to the
// first empty line).
func header(msg []byte) []byte {
	if bytes.HasPrefix(msg, crlf) {
		return nil
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// writeData writes a canonical message dot-stuffed (RFC 5321 §4.5.2: a
// line starting with "." gets another) and ends it with ".\r\n".
func writeData(w *bufio.Writer, msg []byte) error {
	if len(msg) > 0 && msg[0] == '.' {
		_ = w.WriteByte('.')
	}
	for {
		i := bytes.Index(msg, lfDot)
		if i < 0 {
			break
		}
		_, _ = w.Write(msg[:i+2])
		_ = w.WriteByte('.')
		msg = msg[i+2:]
	}
	_, _ = w.Write(msg)
	_, err := w.Write(endOfMsg)
	return err
}
