package deliver

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Reply-text patterns, matched against lower-cased text. They come from
// the providers' published replies (shared docs, provider-responses.md)
// and the wording of common MTAs (Postfix, Exim, Exchange).
var (
	// A cap on one session: messages per connection, or sessions at once.
	reConnLimit = regexp.MustCompile(`(?:max(?:imum)?|too many|limit)[^.]{0,20}(?:messages?|mails?) (?:per|in this|for this|on this) (?:connection|session)` +
		`|too many (?:(?:concurrent|simultaneous|parallel|open(?:ed)?|smtp|active) ){0,2}(?:sessions|connections)`)
	reQuota  = regexp.MustCompile(`mailbox (?:is )?full|over ?quota|quota exceeded|out of storage|exceeded (?:its|their|the) storage|insufficient (?:user )?storage for`)
	reTooBig = regexp.MustCompile(`message (?:is )?too (?:big|large)|message size exceeds|exceeds (?:the )?(?:maximum )?(?:message )?size`)
	// iCloud: "Messages to someone@icloud.com deferred due to excessive volume".
	reRcptDeferred = regexp.MustCompile(`messages? (?:to|for) <?[^\s@<>]+@[^\s<>]+>? [^.]*deferred`)
	reGreylist     = regexp.MustCompile(`gr[ae]y-?list`)
	reRelay        = regexp.MustCompile(`relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)|we do not relay|unable to relay`)
	// The mailbox does not exist or is closed.
	reNoMailbox = regexp.MustCompile(`user unknown|unknown user|no such (?:user|mailbox|recipient|account|address)` +
		`|(?:user|mailbox|recipient|account|address) (?:does not|doesn't) exist` +
		`|mailbox (?:is )?unavailable|mailbox not found|invalid (?:recipient|mailbox)|recipient (?:address )?(?:unknown|not found)` +
		`|unknown recipient|(?:does not|doesn't) have an? \S+ account|account (?:has been )?disabled|mailbox (?:has been )?disabled`)
	reSenderWord = regexp.MustCompile(`\bsender\b|\bmail from\b`)
	// Reputation, blocklists and authentication: the sender's problem.
	rePolicy = regexp.MustCompile(`spamhaus|block ?list|black ?list|blocked|listed (?:at|on|in)|\brbl\b|dnsbl|reputation|\bspam\b|policy|dmarc|\bspf\b|dkim|authenticat`)
	// "try again in 5 minutes", "retry after 30 seconds".
	reRetryAfter = regexp.MustCompile(`\b(?:try|retry|resend)\b[^.\d]{0,20}?\b(?:in|after)\s+(\d{1,5})\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b`)
)

// maxRetryAfter bounds a hint: a reply cannot park a message for days.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses a "try again in N minutes" hint (Postal honours the
// same), returning 0 when there is none.
func retryAfter(text string) time.Duration {
	m := reRetryAfter.FindStringSubmatch(strings.ToLower(text))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0
	}
	unit := time.Second
	switch m[2][0] {
	case 'h':
		unit = time.Hour
	case 'm':
		unit = time.Minute
	}
	return min(time.Duration(n)*unit, maxRetryAfter)
}
