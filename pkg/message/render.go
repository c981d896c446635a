package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/sluice-mta/sluice/pkg/address"
)

// Render builds the message for one recipient in one new slice: Compose,
// Bytes and Release. to is the bare recipient address (the To header and
// {{.email}}); fields are the merge fields, each a top-level template
// key. Errors are *PartError; a header that merge data would break across
// lines is ErrHeaderInjection.
func (t *Template) Render(to string, fields map[string]string, x Extra) ([]byte, error) {
	m, err := t.Compose(to, fields, x)
	if err != nil {
		return nil, err
	}
	defer m.Release()
	return m.Bytes(), nil
}

// Compose builds the message for one recipient as Render does, but as
// pieces to be written in turn (Message.WriteTo, Message.Parts) rather
// than copied into one slice: the campaign's static body lines and MIME
// boundaries are shared, not copied. Call Release when done with it.
func (t *Template) Compose(to string, fields map[string]string, x Extra) (*Message, error) {
	if err := checkTo(to); err != nil {
		return nil, &PartError{Part: "to", Err: err}
	}
	m := getMessage()
	if err := t.compose(m, to, fields, x); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

func (t *Template) compose(m *Message, to string, fields map[string]string, x Extra) error {
	if m.fields == nil {
		m.fields = make(map[string]string, len(fields)+2)
	}
	data := m.fields
	for k, v := range fields {
		data[k] = v
	}
	data["email"] = to
	data["UnsubscribeURL"] = x.UnsubscribeURL

	date := x.Date
	if date.IsZero() {
		date = time.Now()
	}
	out := append(m.buf, "Date: "...)
	out = appendDate(out, date) // RFC 5322 §3.3 date-time
	out = append(out, '\r', '\n')
	out = append(out, t.fromLine...)
	out = append(out, t.replyLine...)
	out, _ = appendHeader(out, "To", to, false) // checkTo bounded its length

	subject, err := m.execHeader(t.subject, t.subjectProg, data)
	if err != nil {
		return &PartError{Part: "subject", Err: err}
	}
	if out, err = appendHeader(out, "Subject", subject, true); err != nil {
		return &PartError{Part: "subject", Err: err}
	}

	id := x.MessageID
	if id == "" {
		id = "<" + rand.Text() + "@" + t.fromDomain + ">"
	} else if err := checkMessageID(id); err != nil {
		return &PartError{Part: "message_id", Err: err}
	}
	out = append(out, "Message-ID: "...)
	out = append(out, id...)
	out = append(out, '\r', '\n')

	for _, h := range t.headers {
		v, err := m.execHeader(h.tmpl, h.prog, data)
		if err != nil {
			return &PartError{Part: "headers", Header: h.name, Err: err}
		}
		if v = strings.Trim(v, " \t"); v == "" { // an empty custom header says nothing: leave it out
			continue
		}
		if out, err = appendHeader(out, h.name, v, true); err != nil {
			return &PartError{Part: "headers", Header: h.name, Err: err}
		}
	}
	for _, h := range x.Headers {
		if err := checkName(h.Name); err != nil {
			return &PartError{Part: "extra_headers", Header: h.Name, Err: err}
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return &PartError{Part: "extra_headers", Header: h.Name, Err: ErrHeaderInjection}
		}
		if out, err = appendHeader(out, h.Name, h.Value, false); err != nil {
			return &PartError{Part: "extra_headers", Header: h.Name, Err: err}
		}
	}
	m.buf = append(out, t.bodyHead...)
	return t.composeBody(m, data)
}

// composeBody adds the body after the header section: one text part, or
// multipart/alternative with the plain text first and the HTML last, the
// order of increasing preference (RFC 2046 §5.1.4). The MIME headers up
// to the first part's content (bodyHead) are already in m.
func (t *Template) composeBody(m *Message, data map[string]string) error {
	if t.text != nil {
		if err := m.execBody(t.text, t.textProg, t.textStatic, data); err != nil {
			return &PartError{Part: "text", Err: err}
		}
	}
	if t.text != nil && t.html != nil {
		// The CRLF before a delimiter belongs to the delimiter, not the part.
		m.addShared(t.boundaryMid)
	}
	if t.html != nil {
		if err := m.execBody(t.html, t.htmlProg, t.htmlStatic, data); err != nil {
			return &PartError{Part: "html", Err: err}
		}
	}
	switch {
	case t.text != nil && t.html != nil:
		m.addShared(t.boundaryEnd)
	case !m.endsCRLF():
		m.buf = append(m.buf, '\r', '\n')
		m.ownUpTo(len(m.buf))
	}
	return nil
}

// executor is a text or an html template.
type executor interface {
	Execute(w io.Writer, data any) error
}

// execBody runs a body template (its program when it has one) into m,
// encoded (see bodyWriter).
func (m *Message) execBody(tm executor, prog program, static staticTexts, data map[string]string) error {
	m.ownUpTo(len(m.buf))
	m.body.reset(static, m)
	if err := execute(tm, prog, &m.body, data); err != nil {
		return err
	}
	m.body.flush()
	return nil
}

// execute runs prog, or tm when there is none or a field is missing (for
// the template's own error: prog has no branches, so tm must fail too).
func execute(tm executor, prog program, w stringWriter, data map[string]string) error {
	if prog != nil && useProgram {
		if prog.run(w, data) {
			return nil
		}
		w = discard{}
	}
	if err := tm.Execute(w, data); err != nil {
		return err
	}
	if prog != nil && useProgram {
		return errProgram
	}
	return nil
}

// useProgram is a test seam: false executes every template.
var useProgram = true

var errProgram = errors.New("message: a merge field is missing, yet its template executed")

// discard is io.Discard as a stringWriter.
type discard struct{}

func (discard) Write(p []byte) (int, error)       { return len(p), nil }
func (discard) WriteString(s string) (int, error) { return len(s), nil }

// execHeader renders a header template and refuses a value that merge
// data has broken across lines (the template itself was checked by
// Compile).
func (m *Message) execHeader(tm *texttemplate.Template, prog program, data map[string]string) (string, error) {
	m.hdr.Reset()
	if err := execute(tm, prog, &m.hdr, data); err != nil {
		return "", err
	}
	if bytes.ContainsAny(m.hdr.Bytes(), "\r\n\x00") {
		return "", ErrHeaderInjection
	}
	return m.hdr.String(), nil
}

const (
	textPartHeader = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	htmlPartHeader = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
)

// prepareBody renders what every message of t shares around its bodies:
// MIME-Version and the content headers, and for multipart the boundary
// lines. "=_" never occurs in quoted-printable output ("=" is always
// followed by hex or a line break), so one boundary serves all of a
// campaign's messages without colliding with a body (RFC 2046 §5.1.1).
func (t *Template) prepareBody() {
	head := "MIME-Version: 1.0\r\n"
	switch {
	case t.html == nil:
		head += textPartHeader + "\r\n"
	case t.text == nil:
		head += htmlPartHeader + "\r\n"
	default:
		boundary := "=_" + rand.Text()
		head += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n--" + boundary + "\r\n" + textPartHeader + "\r\n"
		t.boundaryMid = []byte("\r\n--" + boundary + "\r\n" + htmlPartHeader + "\r\n")
		t.boundaryEnd = []byte("\r\n--" + boundary + "--\r\n")
	}
	t.bodyHead = []byte(head)
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
