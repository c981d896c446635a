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

// has8bit reports whether any byte has the high bit set, 32 bytes at a
// time.
func has8bit(b []byte) bool {
	const high = 0x8080808080808080
	for len(b) >= 32 {
		le := binary.LittleEndian
		if (le.Uint64(b)|le.Uint64(b[8:])|le.Uint64(b[16:])|le.Uint64(b[24:]))&high != 0 {
			return true
		}
		b = b[32:]
	}
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
// first empty line). It is in the first piece when the message comes from
// message.Compose (and the DKIM signer); otherwise the pieces are joined.
func header(parts [][]byte) []byte {
	msg := parts[0]
	if bytes.HasPrefix(msg, crlf) {
		return nil
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	if len(parts) > 1 {
		return header([][]byte{bytes.Join(parts, nil)})
	}
	return msg
}

// writeData writes a canonical message dot-stuffed (RFC 5321 §4.5.2: a
// line starting with "." gets another) and ends it with ".\r\n". A line
// may start in one piece and go on in the next.
func writeData(w *bufio.Writer, parts [][]byte) error {
	lineStart := true
	for _, msg := range parts {
		if len(msg) == 0 {
			continue
		}
		if lineStart && msg[0] == '.' {
			_ = w.WriteByte('.')
		}
		lineStart = msg[len(msg)-1] == '\n'
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
	}
	_, err := w.Write(endOfMsg)
	return err
}
