// Package outcome is sluice's vocabulary for what happened to one
// delivery attempt: its Status, the Scope a failure is about, the Stage it
// came at, and the Outcome that carries them. A reply is classified into an
// Outcome once (deliver.Classify); the throttle, the engine, the queue and
// the reports read it as data. It also lists the final statuses and the
// counters every tally keeps, so Go and Lua share one list.
package outcome

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Status is what happened to one delivery attempt.
type Status string

const (
	// Delivered: the receiver accepted the message (2xx after DATA).
	Delivered Status = "delivered"
	// Deferred: a transient failure; the job is retried later.
	Deferred Status = "deferred"
	// Bounced: a permanent failure that says the recipient (or its domain)
	// cannot receive mail. Hard bounces are suppressed.
	Bounced Status = "bounced"
	// Failed: a permanent failure that is not the recipient's fault (policy,
	// authentication, reputation, a message we could not build). The
	// recipient is not suppressed.
	Failed Status = "failed"
	// Suppressed: not attempted; the address is on the suppression list.
	Suppressed Status = "suppressed"
	// Cancelled: not attempted; the campaign was cancelled.
	Cancelled Status = "cancelled"
	// Queued: not attempted yet. Only records hold it, never an Outcome.
	Queued Status = "queued"
)

// Final reports whether no further attempt follows.
func (s Status) Final() bool { return s != Deferred && s != Queued }

// Finals are the statuses that end a job: a recipient whose record holds
// one is never sent to or counted again.
var Finals = []Status{Delivered, Bounced, Failed, Suppressed, Cancelled}

// IsFinal reports whether a stored status ends a job.
func IsFinal(status string) bool { return slices.Contains(Finals, Status(status)) }

// Interrupted is the Reason of an attempt cut short because its context
// was cancelled (the engine is stopping): a deferral that says nothing
// about the receiver. Not to be confused with the status Cancelled.
const Interrupted = "canceled"

// Scope says whom a failure is about, which decides what reacts to it:
// recipient-scoped failures touch only that recipient, provider-scoped ones
// slow the whole provider down, ip-scoped ones only the source address that
// sent toward that provider, sending-domain ones every source for the
// signing domain, sender-scoped ones point at our own setup.
type Scope string

const (
	ScopeNone          Scope = ""
	ScopeRecipient     Scope = "recipient"      // this mailbox (5.1.1, 4.2.2, 4.2.1)
	ScopeDomain        Scope = "domain"         // the recipient's domain (NXDOMAIN, null MX)
	ScopeProvider      Scope = "provider"       // the receiving provider is pacing us as a whole (4.4.5 busy, 4.7.500, 454 Throttling)
	ScopeIP            Scope = "ip"             // the reputation or limits of our source IP (4.7.28 "from your IP address", TSS04, 4.7.650, S3150, RP-001)
	ScopeSendingDomain Scope = "sending-domain" // the reputation or authentication of our DKIM/SPF domain (4.7.28 DKIM domain, 5.7.515)
	ScopeSender        Scope = "sender"         // our own IP, domain or authentication (5.7.x policy, TSS09)
	ScopeConnection    Scope = "connection"     // this session only (421 max messages per connection)
	ScopeHost          Scope = "host"           // one MX host is unreachable (refused, timeout, TLS)
	ScopeTransaction   Scope = "transaction"    // this transaction's shape (too many recipients)
	ScopeMessage       Scope = "message"        // the message itself (too big, cannot render)
)

// Paces reports whether a deferral of this scope is a pacing signal for
// the throttle: the provider as a whole, one source IP toward it, or one
// sending domain toward it. Which state slows down is the scope's business
// (per provider, per (source, provider), per (domain, provider)).
func (s Scope) Paces() bool {
	return s == ScopeProvider || s == ScopeIP || s == ScopeSendingDomain
}

// Stage is where in the SMTP dialogue the reply came.
type Stage string

const (
	StageRoute    Stage = "route"    // resolving where to send (DNS, routes)
	StageConnect  Stage = "connect"  // TCP connect
	StageGreeting Stage = "greeting" // 220 banner
	StageHello    Stage = "ehlo"     // EHLO/HELO
	StageTLS      Stage = "starttls" // STARTTLS handshake
	StageMail     Stage = "mail"     // MAIL FROM
	StageRcpt     Stage = "rcpt"     // RCPT TO
	StageData     Stage = "data"     // DATA and the final dot
	StageBuild    Stage = "build"    // rendering or signing before any SMTP
	StageQueue    Stage = "queue"    // decided by the queue (expiry, suppression)
)

// Outcome is the result of one delivery attempt, classified once.
type Outcome struct {
	Status   Status `json:"status"`
	Scope    Scope  `json:"scope,omitempty"`
	Code     int    `json:"code,omitempty"`     // SMTP reply code, 0 when none (DNS, connect)
	Enhanced string `json:"enhanced,omitempty"` // RFC 3463 enhanced status code, "5.1.1"
	Text     string `json:"text,omitempty"`     // reply text or local error text
	Stage    Stage  `json:"stage,omitempty"`
	Host     string `json:"host,omitempty"` // MX host (or route target) that answered
	// Source names the egress source the attempt left from (config
	// sources[].name); "" when sent on the default route without one.
	Source string `json:"source,omitempty"`
	// RetryAfter is a hint from the reply text ("try again in 5 minutes");
	// zero when the receiver gave none.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// Reason is a short machine-readable tag for outcomes sluice decides
	// itself: "expired", "suppressed", "render".
	Reason string `json:"reason,omitempty"`
}

// String renders the outcome the way a log line or status column shows it.
func (o Outcome) String() string {
	s := string(o.Status)
	if o.Code != 0 {
		s += fmt.Sprintf(" %d", o.Code)
	}
	if o.Enhanced != "" {
		s += " " + o.Enhanced
	}
	if o.Text != "" {
		s += " " + o.Text
	}
	return s
}

// LogAttrs returns the outcome as slog attributes.
func (o Outcome) LogAttrs() []any {
	return []any{
		slog.String("status", string(o.Status)),
		slog.String("scope", string(o.Scope)),
		slog.Int("code", o.Code),
		slog.String("enhanced", o.Enhanced),
		slog.String("stage", string(o.Stage)),
		slog.String("host", o.Host),
		slog.String("source", o.Source),
		slog.String("reply", o.Text),
	}
}
