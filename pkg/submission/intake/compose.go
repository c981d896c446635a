package intake

import (
	"strings"

	"github.com/sluice-mta/sluice/pkg/message"
)

// Parts are a message given as fields (API JSON, campaignctl send flags)
// rather than as a finished RFC 5322 message.
type Parts struct {
	From    string // "Name <addr@domain>" or a bare address
	ReplyTo string
	Subject string
	Text    string
	HTML    string
	Headers map[string]string
}

// Composed is a checked message, rendered once per recipient.
type Composed struct{ tmpl *message.Template }

// Compose checks p and prepares it with pkg/message, so the result is
// proper MIME (quoted-printable parts, RFC 2047 subjects, folded headers)
// with a Date and Message-ID, and header values that cannot inject
// fields. Errors are *message.PartError naming the part at fault.
//
// Unlike a campaign's, these parts are literal text, not templates: a
// "{{" in them is escaped so it is sent as written. The HTML still passes
// through html/template, which drops HTML comments (Outlook conditional
// comments included); clients that need them send a raw message.
func Compose(p Parts) (*Composed, error) {
	headers := make(map[string]string, len(p.Headers))
	for k, v := range p.Headers {
		headers[k] = literal(v)
	}
	t, err := message.Compile(message.Parts{
		From: p.From, ReplyTo: p.ReplyTo, Headers: headers,
		Subject: literal(p.Subject), Text: literal(p.Text), HTML: literal(p.HTML),
	})
	if err != nil {
		return nil, err
	}
	return &Composed{tmpl: t}, nil
}

// From is the bare From address: the envelope sender and the domain the
// engine DKIM-signs for.
func (c *Composed) From() string { return c.tmpl.FromAddress() }

// Render returns the message for one recipient (its To header names only
// that recipient, since each is a separate job).
func (c *Composed) Render(to string) ([]byte, error) {
	return c.tmpl.Render(to, nil, message.Extra{})
}

// literal makes s a template that prints s: every "{{" becomes an action
// printing "{{".
func literal(s string) string { return strings.ReplaceAll(s, "{{", `{{"{{"}}`) }
