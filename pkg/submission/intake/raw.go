package intake

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/text"
)

// Raw is a client's own RFC 5322 message, checked and completed for
// sending as-is.
type Raw struct {
	// Msg has CRLF line endings, a Date and a Message-ID, and no Bcc.
	Msg []byte
	// From are the From header's addresses; Sender is the Sender
	// header's, or nil. Callers check them against what the client may
	// send as, so a permitted envelope cannot carry a forged author.
	From   []*mail.Address
	Sender *mail.Address
}

// ErrMalformed is wrapped by every PrepareRaw error: the message itself is
// unacceptable (as opposed to a storage failure).
var ErrMalformed = errors.New("malformed message")

// PrepareRaw checks b's header and completes it as a message submission
// agent may (RFC 6409 §8): a missing Date (§8.2) or Message-ID (§8.3) is
// added. Line endings become CRLF (RFC 5322 §2.3 allows no other). Bcc fields are removed: every recipient receives these same
// bytes, so a Bcc left in would show the blind copies to all of them
// (RFC 5322 §3.6.3).
func PrepareRaw(b []byte, now time.Time) (*Raw, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	b = text.CRLF(b) // ends in CRLF
	end := bytes.Index(b, []byte("\r\n\r\n"))
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		return nil, fmt.Errorf("%w: no header (message starts with an empty line)", ErrMalformed)
	case end < 0: // a header and no body: end the header properly
		b = append(b[:len(b):len(b)], '\r', '\n') // append must not write into the caller's array
		end = len(b) - 4
	}
	fields, err := splitFields(b[:end+2])
	if err != nil {
		return nil, err
	}
	h := mail.Header{}
	var kept [][]byte
	for _, f := range fields {
		key := textproto.CanonicalMIMEHeaderKey(f.name)
		if key == "Bcc" {
			continue
		}
		h[key] = append(h[key], f.value)
		kept = append(kept, f.raw)
	}
	r := &Raw{}
	if len(h["From"]) != 1 {
		return nil, fmt.Errorf("%w: want exactly one From header, found %d (RFC 5322 §3.6)", ErrMalformed, len(h["From"]))
	}
	if r.From, err = h.AddressList("From"); err != nil || len(r.From) == 0 {
		return nil, fmt.Errorf("%w: From header: %v", ErrMalformed, err)
	}
	if s := h["Sender"]; len(s) > 0 {
		if len(s) > 1 {
			return nil, fmt.Errorf("%w: more than one Sender header", ErrMalformed)
		}
		if r.Sender, err = mail.ParseAddress(s[0]); err != nil {
			return nil, fmt.Errorf("%w: Sender header: %v", ErrMalformed, err)
		}
	}

	var out bytes.Buffer
	out.Grow(len(b) + 128)
	if len(h["Date"]) == 0 {
		out.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	}
	if len(h["Message-Id"]) == 0 {
		addr := r.From[0].Address
		out.WriteString("Message-ID: <" + rand.Text() + "@" + addr[strings.LastIndexByte(addr, '@')+1:] + ">\r\n")
	}
	for _, f := range kept {
		out.Write(f)
	}
	out.Write(b[end+2:])
	r.Msg = out.Bytes()
	return r, nil
}

// field is one header field: its name, unfolded value and raw bytes
// (continuation lines and the final CRLF included).
type field struct {
	name, value string
	raw         []byte
}

// splitFields splits a header block (every line ending in CRLF) into
// fields, refusing lines that are neither "name: value" nor a
// continuation (RFC 5322 §2.2).
func splitFields(hdr []byte) ([]field, error) {
	var out []field
	start := 0 // where the current field began
	for pos, n := 0, 1; pos < len(hdr); n++ {
		eol := pos + bytes.Index(hdr[pos:], []byte("\r\n")) + 2
		line := hdr[pos:eol]
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: header line %d is a continuation with no field before it", ErrMalformed, n)
			}
			f := &out[len(out)-1]
			f.raw = hdr[start:eol:eol]
			f.value += " " + strings.TrimSpace(string(line))
			pos = eol
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !fieldName(line[:colon]) {
			return nil, fmt.Errorf("%w: header line %d is not \"Name: value\"", ErrMalformed, n)
		}
		start = pos
		out = append(out, field{
			name:  string(line[:colon]),
			value: strings.TrimSpace(string(line[colon+1:])),
			raw:   hdr[pos:eol:eol],
		})
		pos = eol
	}
	return out, nil
}

// fieldName is RFC 5322 §3.6.8 ftext: printable ASCII except colon.
func fieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}
