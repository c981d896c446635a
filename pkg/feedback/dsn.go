package feedback

import (
	"bytes"
	"regexp"
	"strings"
)

// field is one header field, in order.
type field struct{ key, value string }

// dsnFields reads every field of a message/delivery-status body in order,
// across the blank lines that separate its groups (RFC 3464 §2.1), so a
// report that leaves one out still reads right.
func dsnFields(b []byte) []field {
	var out []field
	for len(bytes.TrimSpace(b)) > 0 {
		h, rest := readOrdered(b)
		out = append(out, h...)
		if len(rest) == len(b) {
			break
		}
		b = rest
	}
	return out
}

// readOrdered is readHeader keeping the order of the fields.
func readOrdered(b []byte) ([]field, []byte) {
	var out []field
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		l := strings.TrimRight(string(line), "\r")
		b = rest
		if strings.TrimSpace(l) == "" {
			if len(out) > 0 {
				return out, b
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(out) > 0 {
				out[len(out)-1].value += " " + strings.TrimSpace(l)
			}
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		out = append(out, field{strings.ToLower(k), strings.TrimSpace(v)})
	}
	return out, nil
}

// typed drops the type of a DSN field value ("rfc822; a@b", "smtp; 550 ...").
func typed(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " <@") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

// dsn reads an RFC 3464 delivery status notification.
func (m *msg) dsn() {
	p := m.find("message/delivery-status", "message/global-delivery-status")
	m.dsnFrom(p.body)
}

// dsnInText reads DSN fields that a broken report carries in a text part
// (a lost boundary, a gateway that flattened the report).
func (m *msg) dsnInText() bool {
	for _, p := range m.parts {
		if !strings.HasPrefix(p.mediaType, "text/") {
			continue
		}
		loc := dsnTextRe.FindIndex(p.body)
		if loc == nil {
			continue
		}
		m.dsnFrom(p.body[loc[0]:])
		return len(m.rep.Recipients) > 0
	}
	return false
}

var dsnTextRe = regexp.MustCompile(`(?im)^(reporting-mta|original-recipient|final-recipient):`)

func (m *msg) dsnFrom(body []byte) {
	m.rep.Format = FormatDSN
	var cur *Recipient
	var rcpts []Recipient
	for _, f := range dsnFields(body) {
		v := typed(f.value)
		switch f.key {
		case "reporting-mta":
			m.rep.Reporter = v
		case "final-recipient", "original-recipient":
			a := bareAddress(v)
			if cur == nil || f.key == "final-recipient" && cur.Address != "" || f.key == "original-recipient" && cur.Original != "" {
				rcpts = append(rcpts, Recipient{})
				cur = &rcpts[len(rcpts)-1]
			}
			if f.key == "final-recipient" {
				cur.Address = a
			} else {
				cur.Original = a
			}
		case "action":
			if cur != nil {
				cur.Action = strings.ToLower(v)
			}
		case "status":
			if cur != nil {
				cur.Status = v
				if s, _ := Codes(" " + v + " "); s != "" {
					cur.Status = s
				}
			}
		case "diagnostic-code":
			if cur != nil {
				cur.Text = v
			}
		case "remote-mta":
			if cur != nil {
				cur.RemoteMTA = v
			}
		}
	}
	expl := m.explanation()
	var spare []string // addresses the text names that no field does
	for _, h := range findRecipients(expl, m.exclusions()) {
		named := false
		for _, r := range rcpts {
			named = named || strings.EqualFold(r.Address, h.addr) || strings.EqualFold(r.Original, h.addr)
		}
		if !named {
			spare = append(spare, h.addr)
		}
	}
	var out []Recipient
	for _, r := range rcpts {
		if r.Address == "" {
			r.Address = r.Original
		}
		if r.Address == "" && len(spare) > 0 {
			// "Final-Recipient: rfc822; @host": the text names it.
			r.Address, spare = spare[0], spare[1:]
		}
		if r.Original == r.Address || strings.EqualFold(r.Original, r.Address) {
			r.Original = ""
		}
		if r.Address == "" && r.Text == "" && r.Status == "" {
			continue
		}
		if r.Action == "delivered" || r.Action == "relayed" || r.Action == "expanded" {
			continue // not a failure (RFC 3464 §2.3.3)
		}
		m.judge(&r, expl)
		out = append(out, r)
	}
	if len(out) == 0 {
		m.text()
		m.rep.Format = FormatDSN
		return
	}
	m.rep.Recipients = out
}

// judge classifies r from its own diagnostic, then, when that tells
// nothing, from what the report's text says about its address, then from
// the whole text.
func (m *msg) judge(r *Recipient, expl string) {
	defer m.settle(r)
	r.Text = oneLine(r.Text)
	s, c := Codes(r.Text)
	if r.Status == "" || generic(r.Status) && s != "" && !generic(s) {
		r.Status = s
	}
	r.Code = c
	seg := segment(expl, r.Address)
	r.Kind, r.Reason = Classify(r.Status, r.Code, r.Text)
	if r.Reason == UserUnknown && afterData.MatchString(seg) {
		r.Kind, r.Reason = Classify(r.Status, r.Code, r.Text+" (after end of DATA)")
	}
	if r.Reason == System && r.Text != "" {
		// A gateway's vague notice ("unable to deliver") may forward the
		// MTA's own report as the quoted message: read what it says.
		if p := m.find("message/rfc822"); p != nil {
			if more := segment(string(p.body), r.Address); more != "" {
				if k, why := Classify(r.Status, r.Code, more); why != Other && why != System {
					r.Kind, r.Reason = k, why
				}
			}
		}
	}
	if r.Reason != Other && r.Text != "" {
		return
	}
	for _, more := range []string{seg, expl} {
		if strings.TrimSpace(more) == "" {
			continue
		}
		k, why := Classify(r.Status, r.Code, more)
		if why != Other {
			r.Kind, r.Reason = k, why
			if r.Text == "" {
				r.Text = oneLine(more)
			}
			if r.Code == 0 {
				_, r.Code = Codes(more)
			}
			break
		}
	}
}

// settle weighs the DSN Action: a recipient whose delivery is still being
// tried is never hard.
func (m *msg) settle(r *Recipient) {
	switch {
	case r.Action == "delayed" && r.Kind == Hard:
		r.Kind = Soft
	case r.Action == "failed" && r.Kind == Soft && r.Reason == UserUnknown && strings.HasSuffix(r.Status, ".1.1"):
		// "4.1.1 user unknown" until the reporting MTA gave up: the
		// address kept failing as unknown, it is bad.
		r.Kind = Hard
	}
	if m.senderNamed(r.Text) {
		// The reply names the original's sender, not the recipient:
		// "550 5.2.0 <sender@...> rejected", "553 sender.example does
		// not exist". Nothing to hold against the recipient.
		r.Kind, r.Reason = Soft, SenderRejected
	}
}

// senderNamed reports whether a reply in text is about the original's
// envelope sender: a reply code (and enhanced code) followed by the
// sender's address or domain.
func (m *msg) senderNamed(text string) bool {
	from := m.rep.Original.EnvelopeFrom
	_, domain, ok := strings.Cut(from, "@")
	if !ok || domain == "" {
		return false
	}
	re, err := regexp.Compile(`(?i)\b[245]\d\d[ -]+(?:[245]\.\d{1,3}\.\d{1,3}\s+)?<?(?:` + regexp.QuoteMeta(from) + `|` + regexp.QuoteMeta(domain) + `\b)`)
	return err == nil && re.MatchString(text)
}

// oneLine unfolds a text onto one line and bounds it.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}
