package feedback

// Kind is what a report means for one recipient.
type Kind string

// Kinds.
const (
	// Hard: the address is bad (no such user, no such domain): suppress it.
	Hard Kind = "hard"
	// Soft: a failure that says nothing final about the address (mailbox
	// full, expired, blocked, policy...); see Reason.SenderSide.
	Soft Kind = "soft"
	// Complaint: the recipient reported the message as spam (ARF).
	Complaint Kind = "complaint"
	// AutoReply: an out-of-office or other automatic answer (RFC 3834);
	// nothing to do.
	AutoReply Kind = "auto-reply"
	// Unknown: not understood.
	Unknown Kind = "unknown"
)

// Reason is why, from a stable list: values are never renamed, so they
// can be stored and counted.
type Reason string

// Reasons.
const (
	UserUnknown     Reason = "user-unknown"     // no such mailbox (5.1.1)
	HostUnknown     Reason = "host-unknown"     // no such domain, no MX (5.1.2)
	HasMoved        Reason = "has-moved"        // mailbox moved, no forwarding (5.1.6)
	NotAccepting    Reason = "not-accepting"    // the domain accepts no mail (null MX, 5.1.10)
	MailboxFull     Reason = "mailbox-full"     // over quota (x.2.2)
	MailboxDisabled Reason = "mailbox-disabled" // suspended, inactive, on hold (x.2.1)
	Expired         Reason = "expired"          // gave up retrying (x.4.7)
	Filtered        Reason = "filtered"         // refused by the recipient's own filter or rules
	TooBig          Reason = "too-big"          // message too large (x.3.4, x.2.3)
	Blocked         Reason = "blocked"          // the sending IP or host is blocked or listed
	SenderRejected  Reason = "sender-rejected"  // the envelope sender or its domain was refused
	AuthFailure     Reason = "auth-failure"     // SPF, DKIM, DMARC, reverse DNS
	SpamRelated     Reason = "spam-related"     // content or reputation judged spam
	Policy          Reason = "policy"           // another policy of the receiver (x.7.x)
	RelayDenied     Reason = "relay-denied"     // relaying denied
	RateLimited     Reason = "rate-limited"     // too many messages or connections
	Content         Reason = "content"          // malformed message, virus, not RFC compliant
	Network         Reason = "network"          // routing or connection failure
	System          Reason = "system"           // the receiving system failed
	FeedbackReport  Reason = "complaint"        // an ARF report; FeedbackType says which
	Vacation        Reason = "auto-reply"       // an automatic answer
	Other           Reason = "other"            // nothing more specific could be told
)

// SenderSide reports whether a reason is about the sender (its IP,
// domain, authentication or reputation) rather than the recipient: such
// bounces must not count against the recipient's address at all, not
// even as soft bounces.
func (r Reason) SenderSide() bool {
	switch r {
	case Blocked, SenderRejected, AuthFailure, SpamRelated, Policy, RelayDenied, RateLimited:
		return true
	}
	return false
}

// Format names the kind of report a message was read as.
type Format string

// Formats.
const (
	FormatDSN       Format = "dsn"        // RFC 3464 message/delivery-status
	FormatARF       Format = "arf"        // RFC 5965 message/feedback-report
	FormatAutoReply Format = "auto-reply" // RFC 3834
	FormatText      Format = "text"       // a non-standard, human-readable bounce
	FormatSES       Format = "amazon-ses" // an Amazon SES/SNS JSON notification
	FormatUnknown   Format = "unknown"    // not a report this package understands
)

// Recipient is one recipient a report is about.
type Recipient struct {
	Address  string `json:"recipient"`          // the final recipient, "" when the report does not say
	Original string `json:"original,omitempty"` // Original-Recipient, when it differs
	Kind     Kind   `json:"kind"`
	Reason   Reason `json:"reason"`
	Status   string `json:"status"` // enhanced status code (RFC 3463) as reported, "" when none
	Code     int    `json:"code"`   // SMTP reply code, 0 when none
	Action   string `json:"action,omitempty"`
	// Text is the reported diagnostic, unfolded onto one line.
	Text      string `json:"text,omitempty"`
	RemoteMTA string `json:"remote_mta,omitempty"`
	// FeedbackType is the ARF Feedback-Type (abuse, fraud, virus, other,
	// not-spam, auth-failure) of a complaint.
	FeedbackType string `json:"feedback_type,omitempty"`
}

// Original is what a report tells about the message it is about.
type Original struct {
	MessageID    string // Message-ID without angle brackets
	EnvelopeFrom string // Return-Path or Original-Mail-From: sluice's VERP address
	From         string
	To           string // the To header, as written
	JobID        string // X-Sluice-Job, when quoted
}

// Report is one message read and classified.
type Report struct {
	Format Format
	// EnvelopeTo is the address the report was delivered to (the
	// listener's RCPT TO; else Delivered-To, X-Original-To, Envelope-To).
	EnvelopeTo string
	// JobID is the job named by a VERP address: EnvelopeTo, or else the
	// original's Return-Path; else the quoted X-Sluice-Job, else the job
	// encoded in the original's Message-ID (verp.FromMessageID: campaign
	// messages only). "" when none carries one.
	JobID string
	// Original is the reported message, as far as the report quotes it.
	Original Original
	// From, Subject and MessageID are the report's own.
	From      string
	Subject   string
	MessageID string
	// Reporter is the MTA or feedback provider that made the report.
	Reporter   string
	Recipients []Recipient
}
