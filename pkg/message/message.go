// Package message builds one recipient's RFC 5322 / MIME message from a
// campaign's templates and that recipient's merge fields.
//
// Templates are compiled once (Compile) and rendered per recipient
// (Render), which is on the hot path. A Template is safe for concurrent use.
//
// Merge data is untrusted: a value that would put CR or LF into a header is
// refused (ErrHeaderInjection) rather than cleaned, so one bad list row
// can never add a Bcc or a second message to what we send.
package message

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"net/mail"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
)

// Parts are a message's templates. Subject, Text, HTML and Headers values
// are Go templates over the merge fields; From and ReplyTo are static.
type Parts struct {
	From    string            // "Name <addr@domain>" or a bare address
	ReplyTo string            // optional; one or more addresses
	Subject string            // text/template
	Text    string            // text/template; optional
	HTML    string            // html/template (contextual escaping); optional
	Headers map[string]string // extra headers; values are text/templates
}

// Header is one fixed header the engine adds to every message.
type Header struct{ Name, Value string }

// Extra is what the engine supplies per message besides the merge fields.
type Extra struct {
	// MessageID is "<id@domain>"; empty generates a random one on the
	// From domain.
	MessageID string
	// Date is the Date header; zero means now.
	Date time.Time
	// UnsubscribeURL is exposed to templates as {{.UnsubscribeURL}}.
	UnsubscribeURL string
	// Headers are written as given (List-Unsubscribe, X-Sluice-Job...);
	// a CR, LF or NUL in them is an error.
	Headers []Header
}

// ErrHeaderInjection is returned (wrapped in a *PartError naming the part
// and header) when a rendered header value contains CR, LF or NUL.
var ErrHeaderInjection = errors.New("header injection: value contains CR, LF or NUL")

// PartError says which part of the message failed. Part is one of "from",
// "reply_to", "subject", "text", "html", "headers" (Header names which
// one), and at render time also "to", "message_id" and "extra_headers".
type PartError struct {
	Part   string
	Header string
	Err    error
}

func (e *PartError) Error() string {
	if e.Header != "" {
		return e.Part + ": " + e.Header + ": " + e.Err.Error()
	}
	return e.Part + ": " + e.Err.Error()
}

func (e *PartError) Unwrap() error { return e.Err }

// Template is a compiled message, ready to render for many recipients.
type Template struct {
	fromAddr   string
	fromDomain string
	fromLine   []byte // "From: ...\r\n", folded, precomputed
	replyLine  []byte // "Reply-To: ...\r\n" or nil
	subject    *texttemplate.Template
	text       *texttemplate.Template
	html       *htmltemplate.Template
	headers    []customHeader // sorted by name: output is deterministic

	// The templates' programs (fast.go), nil where a template has none.
	subjectProg, textProg, htmlProg program

	// Rendered once (see prepareBody and staticTexts).
	bodyHead                 []byte // MIME-Version to the first part's content
	boundaryMid, boundaryEnd []byte // multipart only
	textStatic, htmlStatic   staticTexts
}

type customHeader struct {
	name string
	tmpl *texttemplate.Template
	prog program
}

// structural headers are written by Render itself or by later stages
// (DKIM signing, the receiving MTA); letting a campaign set them would
// produce duplicates or lie about the message's structure.
var structural = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true,
	"reply-to": true, "subject": true, "date": true, "message-id": true,
	"mime-version": true, "return-path": true, "received": true,
	"dkim-signature": true, "domainkey-signature": true,
	"authentication-results": true, "received-spf": true,
	"delivered-to": true, "list-unsubscribe": true, "list-unsubscribe-post": true,
}

// structuralPrefixes cover header families (RFC 2045 Content-*, RFC 5322
// §3.6.6 Resent-*, RFC 8617 ARC-*) and the engine's own X-Sluice-*.
var structuralPrefixes = []string{"content-", "resent-", "arc-", "x-sluice-"}

// Compile parses and checks p. Errors are *PartError naming the part.
func Compile(p Parts) (*Template, error) {
	t := &Template{}
	from, err := mail.ParseAddress(p.From)
	if err != nil {
		return nil, &PartError{Part: "from", Err: fmt.Errorf("invalid address %q: %w", p.From, err)}
	}
	at := strings.LastIndexByte(from.Address, '@')
	if at <= 0 || at == len(from.Address)-1 {
		return nil, &PartError{Part: "from", Err: fmt.Errorf("invalid address %q: want local@domain", p.From)}
	}
	t.fromAddr = from.Address
	t.fromDomain = strings.ToLower(from.Address[at+1:])
	if t.fromLine, err = appendHeader(nil, "From", from.String(), false); err != nil {
		return nil, &PartError{Part: "from", Err: err}
	}
	if p.ReplyTo != "" {
		list, err := mail.ParseAddressList(p.ReplyTo)
		if err != nil {
			return nil, &PartError{Part: "reply_to", Err: fmt.Errorf("invalid address list %q: %w", p.ReplyTo, err)}
		}
		s := make([]string, len(list))
		for i, a := range list {
			s[i] = a.String()
		}
		if t.replyLine, err = appendHeader(nil, "Reply-To", strings.Join(s, ", "), false); err != nil {
			return nil, &PartError{Part: "reply_to", Err: err}
		}
	}

	if strings.TrimSpace(p.Subject) == "" {
		return nil, &PartError{Part: "subject", Err: errors.New("is empty")}
	}
	if t.subject, err = compileHeaderTemplate("subject", p.Subject); err != nil {
		return nil, &PartError{Part: "subject", Err: err}
	}
	if p.Text == "" && p.HTML == "" {
		return nil, &PartError{Part: "text", Err: errors.New("a message needs a text or an html body (or both)")}
	}
	if p.Text != "" {
		if t.text, err = texttemplate.New("text").Option("missingkey=error").Parse(p.Text); err != nil {
			return nil, &PartError{Part: "text", Err: err}
		}
	}
	if p.HTML != "" {
		if t.html, err = htmltemplate.New("html").Option("missingkey=error").Parse(p.HTML); err != nil {
			return nil, &PartError{Part: "html", Err: err}
		}
	}

	names := make([]string, 0, len(p.Headers))
	for name := range p.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := make(map[string]string, len(names))
	for _, name := range names {
		if err := checkCustomName(name); err != nil {
			return nil, &PartError{Part: "headers", Header: name, Err: err}
		}
		lower := strings.ToLower(name)
		if prev, dup := seen[lower]; dup {
			return nil, &PartError{Part: "headers", Header: name, Err: fmt.Errorf("same header as %q (names are case-insensitive)", prev)}
		}
		seen[lower] = name
		tm, err := compileHeaderTemplate(name, p.Headers[name])
		if err != nil {
			return nil, &PartError{Part: "headers", Header: name, Err: err}
		}
		t.headers = append(t.headers, customHeader{name: name, tmpl: tm})
	}
	t.prepareStatic()
	t.preparePrograms()
	t.prepareBody()
	return t, nil
}

// prepareStatic encodes the bodies' static lines once (see staticTexts).
// html/template escapes a template, rewriting its tree, the first time it
// runs: that is done here, on no data (an error from the missing data is
// expected; an escaping error comes back at every Render, as before).
func (t *Template) prepareStatic() {
	if t.text != nil {
		t.textStatic = staticTexts{}
		for _, tm := range t.text.Templates() {
			t.textStatic.collect(tm.Tree)
		}
	}
	if t.html != nil {
		_ = t.html.Execute(io.Discard, nil)
		t.htmlStatic = staticTexts{}
		for _, tm := range t.html.Templates() {
			t.htmlStatic.collect(tm.Tree)
		}
	}
}

// preparePrograms compiles the templates that are text and plain fields
// into programs (see fast.go). An html template's program is taken from
// its escaped tree, and only if it executes without error on its own
// fields: an escaping error is then left to come back at every Render.
func (t *Template) preparePrograms() {
	t.subjectProg = compileProgram(t.subject.Tree, false)
	for i := range t.headers {
		t.headers[i].prog = compileProgram(t.headers[i].tmpl.Tree, false)
	}
	if t.text != nil {
		t.textProg = compileProgram(t.text.Tree, false)
	}
	if t.html != nil {
		p := compileProgram(t.html.Tree, true)
		probe := map[string]string{}
		for _, o := range p {
			if o.text == nil {
				probe[o.field] = ""
			}
		}
		if p != nil && t.html.Execute(io.Discard, probe) == nil {
			t.htmlProg = p
		}
	}
}

// FromAddress is the bare From address: the default envelope sender and
// the domain DKIM signs for.
func (t *Template) FromAddress() string { return t.fromAddr }

// FromDomain is the From address's domain, lower-cased.
func (t *Template) FromDomain() string { return t.fromDomain }

// compileHeaderTemplate parses a one-line template. A line break in the
// template source itself (a YAML block scalar's trailing newline, say) is
// reported here, at compile time, instead of failing every recipient.
func compileHeaderTemplate(name, src string) (*texttemplate.Template, error) {
	src = strings.TrimSpace(src)
	if strings.ContainsAny(src, "\r\n\x00") {
		return nil, errors.New("template contains a line break or NUL; header values are one line")
	}
	return texttemplate.New(name).Option("missingkey=error").Parse(src)
}

// checkCustomName enforces RFC 5322 §3.6.8 field-name syntax (ftext:
// printable US-ASCII except colon) and refuses structural headers.
func checkCustomName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	lower := strings.ToLower(name)
	if structural[lower] {
		return fmt.Errorf("is set by sluice itself and cannot be overridden")
	}
	for _, p := range structuralPrefixes {
		if strings.HasPrefix(lower, p) {
			return fmt.Errorf("%s* headers are set by sluice itself and cannot be overridden", name[:len(p)])
		}
	}
	return nil
}

// maxNameLen keeps "Name: " plus some value on the first 78-column line.
const maxNameLen = 64

func checkName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("header name longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("invalid header name %q: RFC 5322 allows printable ASCII except ':' and space", name)
		}
	}
	return nil
}
