package deliver

import (
	"bufio"
	"bytes"
	"encoding/binary"
)

// canonical returns msg with every line ending in CRLF and a final CRLF,
// or msg itself when it already is. SMTP allows no bare CR or LF (RFC 5321
// §2.3.8); sending them invites "SMTP smuggling", where a receiver that
// reads "\n.\n" as end-of-data takes the rest as new commands. So both are
// rewritten here, whatever the caller built.
func canonical(msg []byte) []byte {
	if isCanonical(msg) {
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

var (
	crlf     = []byte("\r\n")
	lfDot    = []byte("\n.")
	endOfMsg = []byte(".\r\n")
)

// isCanonical reports whether every CR is followed by LF, every LF is
// preceded by CR, and msg ends in CRLF. It jumps between line ends with
// IndexByte, so a clean message costs little more than a memchr.
func isCanonical(msg []byte) bool {
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
