package feedback

import (
	"regexp"
	"strconv"
	"strings"
)

// Classify judges one reported failure: status is the enhanced status
// code (RFC 3463, "" when none), code the SMTP reply code (0 when none),
// text the diagnostic as reported. A status or code found in text is used
// when the arguments lack one. It never returns Complaint or AutoReply:
// those come from the form of the report, not from a status.
func Classify(status string, code int, text string) (Kind, Reason) {
	ts, tc := Codes(text)
	if status == "" || generic(status) && ts != "" {
		status = ts
	}
	if code == 0 {
		code = tc
	}
	temporary := strings.HasPrefix(status, "4") || status == "" && code/100 == 4
	reason := textReason(text)
	if sr := statusReason(status); reason == "" || overrides(sr, reason) {
		reason = sr
	}
	if reason == UserUnknown && (strings.Contains(status, ".7.") || afterData.MatchString(text) && !strings.Contains(status, ".1.") && !noAccount.MatchString(text)) {
		// A policy status (x.7.x) is no verdict on the address; nor is
		// a bare "user unknown" given to the message's content after
		// the receiver took the recipient at RCPT TO: a filter speaking
		// (Japanese mobile carriers answer "550 User unknown" there).
		reason = Filtered
	}
	if reason == "" {
		reason = Other
	}
	switch {
	case reason == Other && !temporary:
		return Unknown, Other
	case hardReason(reason) && !temporary:
		return Hard, reason
	}
	return Soft, reason
}

// hardReason: the reasons that condemn the address when permanent.
func hardReason(r Reason) bool {
	return r == UserUnknown || r == HostUnknown || r == HasMoved || r == NotAccepting
}

// generic reports whether an enhanced status tells no more than its class
// (x.0.0) or is the catch-all of a subject (x.5.0 protocol, x.0.x).
func generic(status string) bool {
	_, rest, _ := strings.Cut(status, ".")
	return rest == "0.0" || rest == "5.0" || strings.HasPrefix(rest, "0.")
}

// overrides reports whether a status's own reason is trusted over what the
// text suggests: only the unambiguous mailbox statuses are, and never over
// a sender-side reading of the text (a 5.1.1 does not make an SPF failure
// the recipient's fault, but a 5.2.2 "over quota" is not a blocklisting).
func overrides(statusR, textR Reason) bool {
	switch {
	case statusR == "":
		return false
	case textR == Policy:
		// The catch-all words ("rejected", "denied") tell less than
		// any specific status.
		return true
	}
	switch statusR {
	case MailboxFull, MailboxDisabled, HasMoved:
		return !textR.SenderSide() && textR != UserUnknown
	}
	return false
}

// afterData finds a reply given to the message's content (after DATA),
// as MTAs report the SMTP stage of a failure.
var afterData = regexp.MustCompile(`(?i)(in reply to|after) (end of )?data\b|smtp command:? data\b|>>> data\b|-+smtp command data`)

// noAccount is a receiver saying outright that the account does not
// exist, which stays a verdict on the address whenever it is given.
var noAccount = regexp.MustCompile(`(?i)(doesn't|does not) have an? \S+ account`)

var (
	enhancedRe = regexp.MustCompile(`(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:[^\d.]|\.(?:\D|$)|$)`)
	codeRe     = regexp.MustCompile(`(?:^|[\s:;'"(\[<=#-])([245][0-5]\d)(?:[\s\-:;,.)'"]|$)`)
	codeEnhRe  = regexp.MustCompile(`(?:^|[^\d.])([245][0-5]\d)[\s'"-]+\(?#?([245]\.\d{1,3}\.\d{1,3})`)
)

// Codes finds the enhanced status code and SMTP reply code in a
// diagnostic text: "550 5.1.1 <a@b>: User unknown" gives "5.1.1", 550.
func Codes(text string) (status string, code int) {
	if m := enhancedRe.FindStringSubmatch(text); m != nil {
		status = m[1]
	}
	// A reply code followed by an enhanced code is the receiver's own
	// reply; an enhanced code before it is a relay's wrapper
	// ("5.1.0 - Unknown address error 550-'5.2.2 ... Mailbox Full'").
	if m := codeEnhRe.FindStringSubmatch(text); m != nil {
		code, _ = strconv.Atoi(m[1])
		status = m[2]
	} else if m := codeRe.FindStringSubmatch(text); m != nil {
		code, _ = strconv.Atoi(m[1])
	}
	if status != "" && code != 0 && status[0] != strconv.Itoa(code)[0] {
		code = 0 // a number that is not this reply's code
	}
	return status, code
}

// statusReason maps an enhanced status code (RFC 3463, RFC 7505,
// RFC 7372) to a reason; "" when it tells nothing specific.
func statusReason(status string) Reason {
	if status == "" {
		return ""
	}
	_, detail, _ := strings.Cut(status, ".")
	switch detail {
	case "1.1", "1.3", "1.4", "1.0":
		return UserUnknown
	case "1.2":
		return HostUnknown
	case "1.6":
		return HasMoved
	case "1.10":
		return NotAccepting
	case "1.7", "1.8", "7.27":
		return SenderRejected
	case "2.1", "7.13":
		return MailboxDisabled
	case "2.2":
		return MailboxFull
	case "2.3", "3.4":
		return TooBig
	case "3.1", "3.2", "3.5", "3.0", "2.4":
		return System
	case "4.7":
		return Expired
	case "4.4":
		return HostUnknown // unable to route: no MX, no address (RFC 3463)
	case "4.1", "4.2", "4.3", "4.6", "4.0":
		return Network
	case "7.8", "7.9", "7.20", "7.21", "7.22", "7.23", "7.24", "7.25", "7.26":
		return AuthFailure
	case "7.7", "7.10", "7.11", "7.5":
		return Policy
	case "6.0", "6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "3.3":
		return Content
	}
	if strings.HasPrefix(detail, "7.") {
		return Policy
	}
	return ""
}

// phrases maps reasons to the wordings receivers use for them. They are
// tried in order and the first match wins, so the sender-side readings
// come before the mailbox ones: "user unknown" next to "blocked using
// Spamhaus" is a blocklisting, not a bad address.
var phrases = []struct {
	reason Reason
	re     *regexp.Regexp
}{
	{RelayDenied, re(`relay(ing)? (access )?(denied|not permitted|not allowed|prohibited)|not (permitted|allowed|authorized) to relay|unable to relay|we do not relay|relay not permitted|no relaying|not in my list of allowed rcpthosts|isn't in my list of allowed rcpthosts|open relay`)},
	{Blocked, re(`black ?list|block ?list|deny ?list|spamhaus|spamcop|sorbs|barracuda|dnsbl|\brbl\b|blocked using|listed (at|on|by) |(is|are|been|was|be|currently|ip|host|address) listed|client host .*(blocked|rejected|refused)|your (ip|host|server|network)\b.*(block|refus|reject|ban|not allowed)|(ip|ip address|host) .*(blocked|banned)|blocked .*ip|smtp server of your isp|dynamic ip|dynamic address|dial-?up|residential|not allowed to send|connection (refused|rejected) .*(policy|reputation)|access denied.* (banned|ip)|banned sender|temporarily (blocked|deferred) .*(ip|reputation|complaints)|\bts0[1-4]\b|mail from .* (refused|rejected) .* (ip|reputation)`)},
	{AuthFailure, re(`\bspf\b|sender policy framework|\bdkim\b|\bdmarc\b|domainkeys|not authenticated|unauthenticated|authentication (failed|required|failure)|reverse (dns|lookup)|\bptr\b|\brdns\b|cannot find your hostname|hostname .*(does not resolve|not found|lookup failed)|could not resolve .* your`)},
	{System, re(`procmail|maildrop|command died|mail\.local|mailer error|local delivery failed|pipe to \|`)},
	{SenderRejected, re(`sender (address )?(rejected|denied|refused|unknown|invalid|not allowed|verify failed)|(rejected|refused|denied) sender|mail from (rejected|refused|denied)|(invalid|unknown|bad) sender|domain of sender|sender domain .*(not|invalid)|after mail from`)},
	{NotAccepting, re(`(host|domain|server) does not accept (e-?)?mail|accepts no mail|null mx|no smtp service|couldn't find a mail exchanger`)},
	{HasMoved, re(`has moved|address (has )?changed|no longer (with|at|works|employed)|moved to|forwarding address`)},
	{UserUnknown, re(`user (is )?unknown|unknown (user|recipient|local|mailbox|address|e-?mail|account)|no such (user|mailbox|recipient|address|account|local user|person)|(user|recipient|mailbox|address|account|addressee)( name)? (not found|does ?n[o']t exist|not exist|unknown|is not valid|invalid|not (listed|known|recogni[sz]ed)|rejected: (user|recipient) unknown)|recipient ?not ?found|does not exist|doesn't exist|do not exist|(not|n't) (a )?valid (user|recipient|mailbox|address)|invalid (recipient|mailbox|address|user|e-?mail)|bad destination mailbox|mailbox (unavailable|not available|name not allowed|does not)|no mailbox|unrouteable address|not our customer|(doesn't|does not|do not|don't) have an? (.{1,30} )?account|no account|(user|account|mailbox) .{0,20}(not|doesn't) exist|not a known user|illegal alias|(the )?e-?mail account (that )?you tried to reach does not exist|wasn't found at|was not found at|no longer (valid|available|exists)|address (is )?no longer|unknown local part|verification failed for <|user doesn't have|invalid recipient|addressee unknown|email address .*(not|n't) found|not listed in .{0,30}directory|no valid recipients|invalid final delivery|unknown or illegal|mailbox is inactive|user not found|not found in|undeliverable address|destination address (is )?invalid|no such|disabled or discontinued`)},
	{HostUnknown, re(`host (or domain name )?(unknown|not found)|unknown (host|domain)|domain (not found|does ?n[o']t exist|is not found|unknown|name not found)|no such (host|domain)|name or service not known|nxdomain|no mx (record|host)|non-existent host|unrouteable (mail )?domain|domain (is )?(invalid|not valid)|recipient domain .*(not|invalid)|host not found|domain is not reachable|hostname unknown|can't resolve|cannot resolve|unable to resolve`)},
	{MailboxFull, re(`(mail ?box|inbox|mail ?folder|account|mailbox store)( is)? (full|over)|over (the )?quota|quota (exceeded|exceed|full|violation)|exceeded? .*(quota|storage)|(user|recipient) (is )?over|full mailbox|too much mail|insufficient (disk|storage) (space )?(for|in) (the )?(user|mailbox|recipient)|out of (disk|storage) space|disk quota|storage quota|mailbox size limit|exceeds .*mailbox|size of mailbox|mailbox .*(exceeds|exceeded)|not enough (storage|space)|status 45?2\b`)},
	{MailboxDisabled, re(`(account|mailbox|user|address|recipient) (is |has been )?(disabled|suspended|inactive|deactivated|locked|frozen|blocked|closed|expired|on hold|temporar(il)?y locked)|(disabled|suspended|inactive|deactivated) (account|mailbox|user)|not (an )?active|no longer active|account .* (suspended|disabled)|temporarily (disabled|unavailable)`)},
	{TooBig, re(`(message|mail|email)( size)? (is )?(too (big|large)|exceeds)|size (limit|exceeds)|exceeds (the )?(maximum|size)|message length exceeds|too large`)},
	{Expired, re(`expired|retry time(out)? (exceeded|not reached)|giving up|gave up|could not be delivered (within|for)|has not been delivered for|delivery time|queue(d)? too long|time limit|undeliverable for|no answer from host|timeout waiting|delivery (has been |was )?delayed|will (keep|continue) (trying|to try)|still being retried|not yet been delivered|delivery attempts will continue|temporary failure.*retry`)},
	{SpamRelated, re(`spam|junk|bulk mail|unsolicited|reputation|phish|content (rejected|refused|filter)|message (rejected|refused) (as|because|due)|suspicious|scam`)},
	{Filtered, re(`filter|refused by (the )?recipient|rejected by (the )?recipient|recipient (rejects|refuses|has blocked|blocked)|(user|recipient) has (chosen|decided|blocked)|not accepting (messages|mail) from|does not accept mail from|blocked by (the )?(user|recipient)|recipient rejected|restricted|delivery not authorized|not authorized to (send|deliver|receive)|receiving(-| )restrictions|only accepts mail from`)},
	{RateLimited, re(`too many (messages|connections|recipients|sessions|mails|concurrent)|rate ?limit|rate of|throttl|too (fast|frequent)|exceeded the (message )?rate|connection limit|sending limit|exceeded .*limit|try again later`)},
	{Content, re(`virus|malware|infected|not (rfc|rfc-?)?\s?(5322|2822|822)?\s?compliant|(rfc|rfc-?)\s?(5322|2822|822)|header|attachment|line too long|syntax error|message (content|body) (rejected|refused)|bare (lf|cr)|8-?bit|mime`)},
	{Network, re(`name service error|malformed or unexpected name server|servfail|connection (refused|timed out|reset|closed|lost)|no route to host|network is unreachable|host unreachable|lost connection|timed out|\btls\b|starttls|certificate|mail loop|loops back|routing loop|too many hops|hop count`)},
	{Policy, re(`polic(y|ies)|prohibited|not allowed|administrative|access denied|denied|refused|forbidden|not authorized|rejected`)},
	{System, re(`system (error|failure|full|unavailable)|internal (server )?error|local error|mailer error|server error|service (not available|unavailable)|temporar(il)?y (failure|error|unavailable|problem)|resources|out of memory|insufficient system storage|unable to deliver|cannot deliver|error in processing|i/o error|command (died|failed)|program`)},
}

func re(s string) *regexp.Regexp { return regexp.MustCompile(`(?i)` + s) }

// wrapperRe is a relay's preamble around the receiver's own reply.
var wrapperRe = regexp.MustCompile(`(?i)\b\d\.\d\.\d{1,3} - unknown address error\b`)

// textReason reads a reason from a diagnostic text; "" when it tells none.
func textReason(text string) Reason {
	text = wrapperRe.ReplaceAllString(text, "")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	for _, p := range phrases {
		if p.re.MatchString(text) {
			return p.reason
		}
	}
	return ""
}
