package feedback

import (
	"encoding/json"
	"strings"
)

// sesNote is the part of an Amazon SES notification (sent by mail
// through SNS) that names recipients.
type sesNote struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		ReportingMTA      string `json:"reportingMTA"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Mail *struct {
		Source    string `json:"source"`
		MessageID string `json:"messageId"`
	} `json:"mail"`
}

// ses reads an Amazon SES bounce or complaint notification.
func (m *msg) ses() bool {
	for _, p := range m.parts {
		if !strings.HasPrefix(p.mediaType, "text/") {
			continue
		}
		s := string(p.body)
		i := strings.Index(s, `{"notificationType"`)
		if i < 0 {
			i = strings.Index(s, `{"eventType"`)
		}
		if i < 0 {
			continue
		}
		var n sesNote
		if err := json.NewDecoder(strings.NewReader(s[i:])).Decode(&n); err != nil {
			// Mail wraps long lines: try again without the breaks.
			flat := strings.NewReplacer("\r\n", "", "\n", "").Replace(s[i:])
			if err := json.NewDecoder(strings.NewReader(flat)).Decode(&n); err != nil {
				continue
			}
		}
		m.rep.Format = FormatSES
		if n.Mail != nil {
			m.rep.Original.EnvelopeFrom = n.Mail.Source
		}
		if b := n.Bounce; b != nil {
			m.rep.Reporter = typed(b.ReportingMTA)
			for _, br := range b.BouncedRecipients {
				r := Recipient{Address: br.EmailAddress, Action: br.Action, Status: br.Status, Text: typed(br.DiagnosticCode)}
				m.judge(&r, "")
				if b.BounceType == "Transient" && r.Kind == Hard {
					r.Kind = Soft
				}
				m.rep.Recipients = append(m.rep.Recipients, r)
			}
		}
		if c := n.Complaint; c != nil {
			ft := c.ComplaintFeedbackType
			if ft == "" {
				ft = "abuse"
			}
			for _, cr := range c.ComplainedRecipients {
				m.rep.Recipients = append(m.rep.Recipients, Recipient{Address: cr.EmailAddress, Kind: Complaint, Reason: FeedbackReport, FeedbackType: ft})
			}
		}
		return true
	}
	return false
}
