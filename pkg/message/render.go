package message

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/sluice-mta/sluice/pkg/address"
)

// scratch holds per-render template output; pooled because Render runs
// thousands of times a second and bodies are the bulk of its allocation.
type scratch struct{ hdr, text, html bytes.Buffer }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Render builds the message for one recipient. to is the bare recipient
// address (the To header and {{.email}}); fields are the merge fields,
// each a top-level template key. Errors are *PartError; a header that
// merge data would break across lines is ErrHeaderInjection.
func (t *Template) Render(to string, fields map[string]string, x Extra) ([]byte, error) {
	if err := checkTo(to); err != nil {
		return nil, &PartError{Part: "to", Err: err}
	}
	data := make(map[string]string, len(fields)+2)
	for k, v := range fields {
		data[k] = v
	}
	data["email"] = to
	data["UnsubscribeURL"] = x.UnsubscribeURL

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)

	hint := t.sizeHint.Load()
	out := make([]byte, 0, hint+hint/8+256)

	date := x.Date
	if date.IsZero() {
		date = time.Now()
	}
	out = append(out, "Date: "...)
	out = date.AppendFormat(out, time.RFC1123Z) // RFC 5322 §3.3 date-time
	out = append(out, '\r', '\n')
	out = append(out, t.fromLine...)
	out = append(out, t.replyLine...)
	out, _ = appendHeader(out, "To", to, false) // checkTo bounded its length

	subject, err := t.execHeader(sc, t.subject, data)
	if err != nil {
		return nil, &PartError{Part: "subject", Err: err}
	}
	if out, err = appendHeader(out, "Subject", subject, true); err != nil {
		return nil, &PartError{Part: "subject", Err: err}
	}

	id := x.MessageID
	if id == "" {
		id = "<" + rand.Text() + "@" + t.fromDomain + ">"
	} else if err := checkMessageID(id); err != nil {
		return nil, &PartError{Part: "message_id", Err: err}
	}
	out = append(out, "Message-ID: "...)
	out = append(out, id...)
	out = append(out, '\r', '\n')

	for _, h := range t.headers {
		v, err := t.execHeader(sc, h.tmpl, data)
		if err != nil {
			return nil, &PartError{Part: "headers", Header: h.name, Err: err}
		}
		if v = strings.Trim(v, " \t"); v == "" { // an empty custom header says nothing: leave it out
			continue
		}
		if out, err = appendHeader(out, h.name, v, true); err != nil {
			return nil, &PartError{Part: "headers", Header: h.name, Err: err}
		}
	}
	for _, h := range x.Headers {
		if err := checkName(h.Name); err != nil {
			return nil, &PartError{Part: "extra_headers", Header: h.Name, Err: err}
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return nil, &PartError{Part: "extra_headers", Header: h.Name, Err: ErrHeaderInjection}
		}
		if out, err = appendHeader(out, h.Name, h.Value, false); err != nil {
			return nil, &PartError{Part: "extra_headers", Header: h.Name, Err: err}
		}
	}

	var text, html []byte
	if t.text != nil {
		sc.text.Reset()
		if err := t.text.Execute(&sc.text, data); err != nil {
			return nil, &PartError{Part: "text", Err: err}
		}
		text = sc.text.Bytes()
	}
	if t.html != nil {
		sc.html.Reset()
		if err := t.html.Execute(&sc.html, data); err != nil {
			return nil, &PartError{Part: "html", Err: err}
		}
		html = sc.html.Bytes()
	}
	out = appendBody(out, text, html)

	if n := int64(len(out)); n > hint {
		t.sizeHint.Store(n) // racy max; an occasional smaller store only costs a regrow
	}
	return out, nil
}

// execHeader renders a header template and refuses a value that merge
// data has broken across lines (the template itself was checked by
// Compile).
func (t *Template) execHeader(sc *scratch, tm *texttemplate.Template, data map[string]string) (string, error) {
	sc.hdr.Reset()
	if err := tm.Execute(&sc.hdr, data); err != nil {
		return "", err
	}
	if bytes.ContainsAny(sc.hdr.Bytes(), "\r\n\x00") {
		return "", ErrHeaderInjection
	}
	return sc.hdr.String(), nil
}

const (
	textPartHeader = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	htmlPartHeader = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
)

// appendBody writes MIME-Version, the content headers and the body: one
// text part, or multipart/alternative with the plain text first and the
// HTML last, the order of increasing preference (RFC 2046 §5.1.4).
func appendBody(out, text, html []byte) []byte {
	out = append(out, "MIME-Version: 1.0\r\n"...)
	if text == nil || html == nil {
		body, hdr := text, textPartHeader
		if text == nil {
			body, hdr = html, htmlPartHeader
		}
		out = append(out, hdr...)
		out = append(out, '\r', '\n')
		out = appendQP(out, body)
		if n := len(out); n < 2 || out[n-2] != '\r' || out[n-1] != '\n' {
			out = append(out, '\r', '\n')
		}
		return out
	}
	// "=_" never occurs in quoted-printable output ("=" is always followed
	// by hex or a line break), so the boundary cannot collide with a body
	// (RFC 2046 §5.1.1).
	boundary := "=_" + rand.Text()
	out = append(out, "Content-Type: multipart/alternative; boundary=\""...)
	out = append(out, boundary...)
	out = append(out, "\"\r\n\r\n--"...)
	out = append(out, boundary...)
	out = append(out, "\r\n"+textPartHeader+"\r\n"...)
	out = appendQP(out, text)
	// The CRLF before a delimiter belongs to the delimiter, not the part.
	out = append(out, "\r\n--"...)
	out = append(out, boundary...)
	out = append(out, "\r\n"+htmlPartHeader+"\r\n"...)
	out = appendQP(out, html)
	out = append(out, "\r\n--"...)
	out = append(out, boundary...)
	return append(out, "--\r\n"...)
}

// checkTo accepts only a bare addr-spec, so the To header names exactly
// the one recipient the envelope does. The rules are address.Normalize's,
// the ones launch and the APIs checked the recipient with; a line break
// is ErrHeaderInjection, and surrounding space (which Normalize would
// trim) is refused: the header must carry the address exactly.
func checkTo(to string) error {
	if strings.ContainsAny(to, "\r\n\x00") {
		return ErrHeaderInjection
	}
	n, err := address.Normalize(to)
	if err != nil {
		return err
	}
	if len(n) != len(to) {
		return fmt.Errorf("invalid address %q: surrounding space", to)
	}
	return nil
}

// checkMessageID accepts "<left@right>" in printable ASCII (RFC 5322
// §3.6.4 msg-id, without the obsolete forms).
func checkMessageID(id string) error {
	if strings.ContainsAny(id, "\r\n\x00") {
		return ErrHeaderInjection
	}
	if len(id) < 5 || id[0] != '<' || id[len(id)-1] != '>' || !strings.Contains(id, "@") {
		return fmt.Errorf("invalid Message-ID %q: want <left@right>", id)
	}
	for i := 1; i < len(id)-1; i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return fmt.Errorf("invalid Message-ID %q: want <left@right> in printable ASCII", id)
		}
	}
	return nil
}
