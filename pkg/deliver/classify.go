package deliver

import (
	"regexp"
	"strings"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Classify turns an SMTP reply into an Outcome: Status, Scope and
// RetryAfter. It is the one place reply codes and texts are interpreted.
//
// The reply code decides transient versus permanent (RFC 5321 §4.2.1); the
// RFC 3463 enhanced code and the text decide whom the failure is about.
// The first digit alone is not enough: 5.7.x is the sender's problem and
// must never suppress a recipient, and providers send transient conditions
// as 5xx (Microsoft 5.2.122). A 5xx that says nothing about the recipient
// is Failed, never Bounced. enhanced may be empty, in which case a leading
// "d.d.d" in text is used.
func Classify(code int, enhanced, text string) outcome.Outcome {
	if !validEnhanced(enhanced) {
		enhanced = leadingEnhanced(text)
	}
	o := outcome.Outcome{Code: code, Enhanced: enhanced, Text: text, RetryAfter: retryAfter(text)}
	switch {
	case code >= 200 && code < 300:
		o.Status = outcome.Delivered
		return o
	case code < 400 || code >= 600:
		// 1xx/3xx where a final answer was due, or garbage: the host is
		// not speaking SMTP properly; nothing is known about the message.
		o.Status, o.Scope = outcome.Deferred, outcome.ScopeHost
		return o
	}
	t := strings.ToLower(text)
	o.Status, o.Scope = classify(code >= 500, detail(enhanced), t)
	o.Scope = namedScope(o.Scope, detail(enhanced), t)
	return o
}

// scopeRule says which reputation a reply names. Providers give one code
// for many limits (Gmail's 421 4.7.28 covers the IP, the netblock, the DKIM
// domain, the SPF domain, a URL and a Message-ID); only the text tells
// them apart, and a sender with several source IPs and signing domains
// must slow the thing named and nothing else.
type scopeRule struct {
	name  string
	det   string         // enhanced code without its class ("7.28"); "" matches any
	match *regexp.Regexp // on the lower-cased text; nil matches any
	scope outcome.Scope
}

// scopeRules refine a reply classified as about the provider or about the
// sender (the reputation-bearing scopes) into the one it names; the first
// rule that matches wins, a reply none matches keeps its scope. The texts
// are the providers' published ones (shared docs, provider-responses.md,
// rows 1–49). Status never changes here: a permanent S3150 stays Failed,
// only now it is known to be about one source IP.
var scopeRules = []scopeRule{
	// Gmail 4.7.28, row 40: the same Message-ID sent too often is one
	// message (a loop or a resend bug), not a reason to slow anyone.
	{"gmail-message-id", "7.28", regexp.MustCompile(`same message-id`), outcome.ScopeMessage},
	// Row 35: the IP's netblock covers sources beyond the one that sent,
	// so the provider as a whole slows down (the safe superset).
	{"gmail-netblock", "7.28", regexp.MustCompile(`ip netblock`), outcome.ScopeProvider},
	// Rows 1, 34, 39: "originating from your IP address" (rate or block).
	{"gmail-ip", "7.28", regexp.MustCompile(`your ip address`), outcome.ScopeIP},
	// Rows 36, 37: "originating from your DKIM domain" / "SPF domain".
	{"gmail-domain", "7.28", regexp.MustCompile(`your (?:dkim|spf) domain`), outcome.ScopeSendingDomain},
	// Row 2 and its IP twin: Gmail 4.7.0 "very low reputation of the
	// sending domain" / "... of the sending IP address".
	{"reputation-ip", "", regexp.MustCompile(`reputation of (?:the|your) sending ip|\bip reputation\b`), outcome.ScopeIP},
	{"reputation-domain", "", regexp.MustCompile(`reputation of (?:the|your) (?:sending )?domain|\bdomain reputation\b`), outcome.ScopeSendingDomain},
	// Rows 12, 13, 46, 47: Yahoo's TSS04/TSS05/TSS09 name "Messages from IP".
	{"yahoo-tss", "", regexp.MustCompile(`\[tss0\d\]`), outcome.ScopeIP},
	// Rows 18, 42: Microsoft 4.7.650 "rate limited due to IP reputation"
	// (caught by reputation-ip above too; the code alone is enough).
	{"microsoft-4.7.650", "7.650", nil, outcome.ScopeIP},
	// Rows 20, 43: Microsoft S3150/S3140 block list of the source network.
	{"microsoft-blocklist", "", regexp.MustCompile(`\bs31[45]0\b|part of their network is on our block list`), outcome.ScopeIP},
	// Rows 19, 44: Microsoft RP-001/002/003, limits of the source IP.
	{"microsoft-rp", "", regexp.MustCompile(`\brp-00[123]\b`), outcome.ScopeIP},
	// Rows 21, 45: Microsoft 5.7.515, the sending domain's authentication
	// level (SPF+DKIM+DMARC for senders above 5,000 a day).
	{"microsoft-5.7.515", "7.515", nil, outcome.ScopeSendingDomain},
	// Row 28: Comcast BL000001 (Spamhaus ZEN) and BL000010 (Cloudmark)
	// list the connecting IP.
	{"comcast-dnsbl", "", regexp.MustCompile(`\bbl0000[01]\d\b`), outcome.ScopeIP},
}

// namedScope applies scopeRules to a reply whose scope is provider or
// sender; every other scope (recipient, connection, host...) is already
// as narrow as it gets.
func namedScope(scope outcome.Scope, det, t string) outcome.Scope {
	if scope != outcome.ScopeProvider && scope != outcome.ScopeSender {
		return scope
	}
	for _, r := range scopeRules {
		if (r.det == "" || r.det == det) && (r.match == nil || r.match.MatchString(t)) {
			return r.scope
		}
	}
	return scope
}

// namesOurs reports whether scope is about our own sending setup: a
// refusal naming it is a verdict on us, whatever the stage.
func namesOurs(s outcome.Scope) bool {
	return s == outcome.ScopeSender || s == outcome.ScopeIP || s == outcome.ScopeSendingDomain
}

// classify decides status and scope. det is the enhanced code without its
// class ("1.1", "7.26"), "" when there is none; t is the lower-cased text.
func classify(perm bool, det, t string) (outcome.Status, outcome.Scope) {
	sub, _, _ := strings.Cut(det, ".")
	soft := func(s outcome.Scope) (outcome.Status, outcome.Scope) { return outcome.Deferred, s }
	hard := func(s outcome.Scope) (outcome.Status, outcome.Scope) {
		if perm {
			return outcome.Failed, s
		}
		return outcome.Deferred, s
	}
	switch {
	// Shape of the session or transaction, whatever the class: a fresh
	// connection or fewer recipients will do (Yahoo "421 Max message per
	// connection", Comcast "Too many sessions opened"; RFC 5321
	// §4.5.3.1.10 says to treat even a 552 "too many recipients" as
	// temporary).
	case reConnLimit.MatchString(t):
		return soft(outcome.ScopeConnection)
	case det == "5.3" || strings.Contains(t, "too many recipients"):
		return soft(outcome.ScopeTransaction)
	// Microsoft 554 5.2.122: the recipient receives too much this hour.
	case det == "2.122":
		return soft(outcome.ScopeRecipient)
	// Mailbox full is a soft bounce whatever the class (RFC 3463 X.2.2 is
	// "persistent transient"); suppression after repeats is the queue's call.
	case det == "2.2" || ((sub == "" || sub == "0" || sub == "2") && reQuota.MatchString(t)):
		return soft(outcome.ScopeRecipient)
	case det == "3.4" || det == "2.3" || (reTooBig.MatchString(t) && sub != "7"):
		return hard(outcome.ScopeMessage)
	// X.1.7/X.1.8: our MAIL FROM address or its domain.
	case det == "1.7" || det == "1.8":
		return hard(outcome.ScopeSender)
	// Gmail's authentication and sender-configuration codes (4.7.32
	// unaligned From, 4.7.40 no DMARC, 4.7.23–27/30 SPF, PTR, DKIM).
	case !perm && senderConfig[det]:
		return outcome.Deferred, outcome.ScopeSender
	}
	if !perm {
		return classifyTransient(sub, det, t)
	}
	return classifyPermanent(sub, det, t)
}

func classifyTransient(sub, det, t string) (outcome.Status, outcome.Scope) {
	switch {
	// iCloud's "421 4.7.1 Messages to someone@icloud.com deferred due to
	// excessive volume" names one mailbox; greylisting is per recipient.
	case reRcptDeferred.MatchString(t) || reGreylist.MatchString(t):
		return outcome.Deferred, outcome.ScopeRecipient
	case det == "1.2" || det == "1.10":
		return outcome.Deferred, outcome.ScopeDomain
	case sub == "1" || sub == "2": // 4.2.1 receiving too fast, 4.2.0 busy
		return outcome.Deferred, outcome.ScopeRecipient
	}
	// Everything else transient is the provider pacing us: 4.7.28, 4.7.0
	// reputation, TSS04, 4.7.500, 4.7.650, RP-001, 4.4.5 busy, 454
	// Throttling, resource constraints. scopeRules then narrow those that
	// name our IP or our sending domain.
	return outcome.Deferred, outcome.ScopeProvider
}

func classifyPermanent(sub, det, t string) (outcome.Status, outcome.Scope) {
	switch {
	case reRelay.MatchString(t):
		// The host does not accept mail for the domain: its MX records
		// are wrong, which no retry of ours fixes.
		return outcome.Failed, outcome.ScopeDomain
	case sub == "7":
		return outcome.Failed, outcome.ScopeSender // 5.7.26 DMARC, 5.7.1 S3150/CS01, 5.7.515, 5.7.2 TSS09
	case det == "1.2" || det == "1.10":
		return outcome.Bounced, outcome.ScopeDomain
	case sub == "1" || det == "2.1":
		return outcome.Bounced, outcome.ScopeRecipient // 5.1.1 no such user, 5.2.1 disabled
	// Microsoft directory-based edge blocking: the address is not in the
	// tenant's directory.
	case det == "4.1" && strings.Contains(t, "recipient address rejected"):
		return outcome.Bounced, outcome.ScopeRecipient
	case (sub == "" || sub == "0" || sub == "2" || sub == "5") && reNoMailbox.MatchString(t) && !reSenderWord.MatchString(t):
		return outcome.Bounced, outcome.ScopeRecipient // 550 5.5.0 mailbox unavailable, Yahoo 554 "doesn't have a … account"
	case (sub == "" || sub == "0") && rePolicy.MatchString(t):
		return outcome.Failed, outcome.ScopeSender // Comcast 554 BL000001 Spamhaus, bare blocklist replies
	case sub == "4":
		return outcome.Failed, outcome.ScopeDomain // 5.4.4 unable to route, 5.4.6 loop
	}
	// A permanent refusal that names nobody: this message will not go, and
	// nothing is learnt about the recipient.
	return outcome.Failed, outcome.ScopeMessage
}

// senderConfig lists transient 4.7.x codes that point at our own setup.
var senderConfig = map[string]bool{
	"7.23": true, "7.24": true, "7.25": true, "7.26": true, "7.27": true,
	"7.30": true, "7.32": true, "7.40": true,
}

// stageOutcome adjusts a reply's classification for where it came. A
// reply to MAIL FROM predates RCPT, so it cannot be about the recipient
// (RFC 5321 §3.3). A refusal at greeting or EHLO is about the session: it
// is never a verdict on the recipient, and unless it names our sending
// source (Comcast's Spamhaus 554 at connect) it only defers.
func stageOutcome(o outcome.Outcome, stage outcome.Stage) outcome.Outcome {
	o.Stage = stage
	switch stage {
	case outcome.StageMail:
		if o.Scope == outcome.ScopeRecipient || o.Scope == outcome.ScopeDomain {
			o.Scope = outcome.ScopeSender
			if o.Status == outcome.Bounced {
				o.Status = outcome.Failed
			}
		}
	case outcome.StageGreeting, outcome.StageHello, outcome.StageTLS:
		switch {
		case namesOurs(o.Scope) && o.Status == outcome.Failed:
		case o.Scope.Paces() || o.Scope == outcome.ScopeConnection || namesOurs(o.Scope):
			o.Status = outcome.Deferred
		default:
			o.Status, o.Scope = outcome.Deferred, outcome.ScopeHost
		}
	}
	return o
}

// detail strips the class from an enhanced code: "5.1.1" → "1.1".
func detail(enhanced string) string {
	if len(enhanced) < 5 {
		return ""
	}
	return enhanced[2:]
}

// validEnhanced reports whether s is an RFC 3463 status code:
// class "." subject "." detail, subject and detail of 1–3 digits.
func validEnhanced(s string) bool {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return false
	}
	subj, det, ok := strings.Cut(s[2:], ".")
	return ok && digits(subj, 3) && digits(det, 3)
}

// leadingEnhanced returns the enhanced code opening text, if any.
func leadingEnhanced(text string) string {
	first, _, _ := strings.Cut(text, " ")
	if validEnhanced(first) {
		return first
	}
	return ""
}

func digits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
