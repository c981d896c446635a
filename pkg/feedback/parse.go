package feedback

import (
	"bytes"
	"errors"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/sluice-mta/sluice/pkg/verp"
)

// ErrNotMessage is returned for input that has no header at all.
var ErrNotMessage = errors.New("feedback: not a mail message (no header fields)")

// Parse reads one message that came back (a bounce, a complaint, an
// auto-reply) and classifies every recipient it names. envelopeTo is the
// RCPT TO address it was delivered to, "" when unknown (the header fields
// that record delivery are tried then). A message that is none of those
// forms gives a Report of FormatUnknown with no recipients, not an error.
func Parse(raw []byte, envelopeTo string) (*Report, error) {
	raw = bytes.TrimLeft(raw, "\r\n\t ")
	h, body := readHeader(raw)
	if len(h) == 0 {
		return nil, ErrNotMessage
	}
	rep := &Report{
		Format:     FormatUnknown,
		EnvelopeTo: bareAddress(envelopeTo),
		From:       headerText(h.Get("From")),
		Subject:    headerText(h.Get("Subject")),
		MessageID:  strings.Trim(h.Get("Message-Id"), "<> "),
	}
	if rep.EnvelopeTo == "" {
		for _, k := range []string{"X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "X-Delivered-To"} {
			if a := bareAddress(h.Get(k)); a != "" {
				rep.EnvelopeTo = a
				break
			}
		}
	}
	var parts []part
	walk(h, body, 0, &parts)
	m := &msg{h: h, parts: parts, rep: rep}
	m.read()
	rep.JobID = jobID(rep.EnvelopeTo)
	if rep.JobID == "" {
		rep.JobID = jobID(rep.Original.EnvelopeFrom)
	}
	if rep.JobID == "" {
		rep.JobID = rep.Original.JobID
	}
	if rep.JobID == "" {
		// No VERP (turned off, or a forwarded report): the Message-ID
		// sluice gave a campaign message names its job too.
		rep.JobID, _ = verp.FromMessageID(rep.Original.MessageID)
	}
	return rep, nil
}

// msg is a message being read.
type msg struct {
	h     textproto.MIMEHeader
	parts []part
	rep   *Report
}

func (m *msg) read() {
	m.original()
	if m.find("message/feedback-report", "message/delivery-status", "message/global-delivery-status") == nil {
		// A report forwarded inside another message (a gateway's
		// notice wrapping the MTA's DSN): read the inner one.
		if p := m.find("message/rfc822"); p != nil {
			ih, ib := readHeader(bytes.TrimLeft(p.body, "\r\n\t "))
			if strings.Contains(strings.ToLower(ih.Get("Content-Type")), "report") {
				var inner []part
				walk(ih, ib, 1, &inner)
				m.parts = append(m.parts, inner...)
			}
		}
	}
	switch {
	case m.find("message/feedback-report") != nil:
		m.arf()
	case m.find("message/delivery-status", "message/global-delivery-status") != nil:
		m.dsn()
	case m.ses():
	case m.dsnInText():
	case m.complaintLike():
		m.hotmailComplaint()
	case m.bounceLike() && m.text():
	case m.autoReply():
	case m.text():
	}
}

// find returns the first part of one of the media types.
func (m *msg) find(types ...string) *part {
	for i := range m.parts {
		for _, t := range types {
			if m.parts[i].mediaType == t {
				return &m.parts[i]
			}
		}
	}
	return nil
}

// explanation is the human-readable text of the report: its text parts
// (HTML stripped when there is no plain text), up to any quoted original.
func (m *msg) explanation() string {
	var plain, html strings.Builder
	for _, p := range m.parts {
		switch p.mediaType {
		case "text/plain", "text/enriched", "":
			plain.Write(p.body)
			plain.WriteString("\n")
		case "text/html":
			html.WriteString(stripHTML(string(p.body)))
			html.WriteString("\n")
		}
	}
	s := plain.String()
	if strings.TrimSpace(s) == "" {
		s = html.String()
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if i := originalMarker(s); i >= 0 {
		s = s[:i]
	}
	return s
}

// original fills Report.Original from a message/rfc822 or
// text/rfc822-headers part, or from headers quoted after a marker in the
// text of a non-standard bounce.
func (m *msg) original() {
	var oh textproto.MIMEHeader
	if p := m.find("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers", "message/partial"); p != nil {
		oh, _ = readHeader(bytes.TrimLeft(p.body, "\r\n\t "))
	} else {
		for _, p := range m.parts {
			if !strings.HasPrefix(p.mediaType, "text/") {
				continue
			}
			s := strings.ReplaceAll(string(p.body), "\r\n", "\n")
			if i := originalMarker(s); i >= 0 {
				oh = quotedHeader(s[i:])
				if len(oh) > 0 {
					break
				}
			}
		}
	}
	if len(oh) == 0 {
		return
	}
	o := &m.rep.Original
	o.MessageID = strings.Trim(oh.Get("Message-Id"), "<> ")
	o.EnvelopeFrom = bareAddress(oh.Get("Return-Path"))
	o.From = headerText(oh.Get("From"))
	o.To = headerText(oh.Get("To"))
	o.JobID = oh.Get("X-Sluice-Job")
}

// markerRe finds where a non-standard bounce starts quoting the original.
var markerRe = regexp.MustCompile(`(?im)^[ \t]*[-=_*>]*[ \t]*(?:` +
	`(?:a |the )?copy of (?:the |your )?(?:original )?message|below this line is a copy|` +
	`original message(?: headers| follows| header)?[ \t]*[-:=.]*[ \t]*$|(?:-+ ?)original message|` +
	`returned (?:message|mail|content)|undelivered message|unsent message|` +
	`(?:the )?(?:message|mail)? ?headers? (?:of (?:the |your )?(?:original|returned) message )?(?:follows?|is following)|` +
	`headers? of (?:the |your )?(?:original|returned) message|original message headers|your message reads|` +
	`start of (?:the )?returned|included is a copy|rfc822 headers|content-type: message/rfc822|` +
	`this is the (?:original|returned) message)`)

// originalMarker is the offset of the marker line before a quoted
// original, -1 when there is none.
func originalMarker(s string) int {
	if loc := markerRe.FindStringIndex(s); loc != nil {
		return loc[0]
	}
	return -1
}

// quotedHeader reads the header block that follows a marker line, whatever
// its indentation.
func quotedHeader(s string) textproto.MIMEHeader {
	_, s, _ = strings.Cut(s, "\n") // the marker line
	lines := strings.Split(s, "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	// Skip up to a few lines of prose to the first field.
	for i := 0; i < 5 && len(lines) > 0 && !fieldLine.MatchString(lines[0]); i++ {
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return nil
	}
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " \t"))
	for i, l := range lines {
		if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
			lines[i] = l[indent:]
		}
	}
	h, _ := readHeader([]byte(strings.Join(lines, "\n")))
	return h
}

var fieldLine = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9-]*:`)

// addrRe matches an address in free text.
var addrRe = regexp.MustCompile(`[A-Za-z0-9._%+=!#$&'*/?^{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}`)

// bareAddress returns the first address in a header value or field
// ("rfc822; a@b", "Name <a@b>", "<a@b>"), lower-cased domain kept as is.
func bareAddress(v string) string {
	if v == "" {
		return ""
	}
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Address
	}
	return strings.Trim(addrRe.FindString(v), ".")
}

// jobID decodes a VERP address; "" when it carries no readable job id.
func jobID(addr string) string {
	if !strings.Contains(addr, "+") {
		return ""
	}
	id, err := verp.Decode(addr)
	if err != nil || id == "" || !utf8.ValidString(id) {
		return ""
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return id
}

var tagRe = regexp.MustCompile(`(?s)<(?:style|script).*?</(?:style|script)>|<[^>]*>`)

func stripHTML(s string) string {
	s = tagRe.ReplaceAllString(s, "\n")
	r := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&nbsp;", " ", "&quot;", `"`, "&#39;", "'")
	return r.Replace(s)
}
