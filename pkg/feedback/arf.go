package feedback

import (
	"net/mail"
	"regexp"
	"strings"
)

// arf reads an ARF feedback report (RFC 5965): one complaint for each
// Original-Rcpt-To, or for the original's recipient when the report does
// not name one (many providers redact it).
func (m *msg) arf() {
	p := m.find("message/feedback-report")
	m.rep.Format = FormatARF
	ftype := ""
	var rcpts []string
	for _, f := range dsnFields(p.body) {
		v := strings.TrimSpace(f.value)
		switch f.key {
		case "feedback-type":
			ftype = strings.ToLower(v)
		case "original-rcpt-to", "removal-recipient":
			if a := bareAddress(v); a != "" {
				rcpts = append(rcpts, a)
			}
		case "original-mail-from":
			if m.rep.Original.EnvelopeFrom == "" {
				m.rep.Original.EnvelopeFrom = bareAddress(v)
			}
		case "reporting-mta":
			m.rep.Reporter = typed(v)
		case "user-agent":
			if m.rep.Reporter == "" {
				m.rep.Reporter = v
			}
		}
	}
	if ftype == "" {
		ftype = "abuse"
	}
	m.complaints(rcpts, ftype)
}

// complaintSubjectRe: complaints sent without ARF (Hotmail's JMRP and
// its kin) say so in the subject.
var complaintSubjectRe = regexp.MustCompile(`(?i)complaint about message|abuse report|spam report|feedback report|\bfbl\b|junk mail report|spam complaint`)

// complaintLike reports a complaint that is not ARF: a quoted original
// and a subject that says what it is.
func (m *msg) complaintLike() bool {
	return m.find("message/rfc822") != nil && complaintSubjectRe.MatchString(m.rep.Subject)
}

func (m *msg) hotmailComplaint() {
	m.rep.Format = FormatARF
	m.complaints(nil, "abuse")
}

// complaints records one complaint per address, or the original's
// recipients when none is given, or one complaint about an unknown
// address.
func (m *msg) complaints(rcpts []string, ftype string) {
	if len(rcpts) == 0 {
		if p := m.find("message/rfc822", "text/rfc822-headers"); p != nil {
			oh, _ := readHeader(p.body)
			if a := bareAddress(oh.Get("X-Hmxmroriginalrecipient")); a != "" {
				rcpts = append(rcpts, a)
			}
		}
	}
	if len(rcpts) == 0 {
		if as, err := mail.ParseAddressList(m.rep.Original.To); err == nil {
			for _, a := range as {
				rcpts = append(rcpts, a.Address)
			}
		}
	}
	if len(rcpts) == 0 {
		rcpts = []string{""}
	}
	for _, a := range rcpts {
		m.rep.Recipients = append(m.rep.Recipients, Recipient{Address: a, Kind: Complaint, Reason: FeedbackReport, FeedbackType: ftype})
	}
}
