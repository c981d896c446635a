// Package suppression keeps the list of addresses and domains that must not
// be mailed, and answers, fast and in bulk, whether a recipient is on it.
//
// The list is a Redis hash per shard (keyspace.ShardOf of the address, or
// of "@domain" for a domain entry; see shard.go): field = normalised
// address (or "@domain"), value = one compact entry encoding (codec.go). A
// lookup of any number of recipients is therefore one round trip (an
// HMGET per shard, pipelined), and an entry costs little more than its
// address and reply text, which matters at millions of entries. Every
// change is also appended to its shard's capped audit stream.
package suppression

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reason says why an address is suppressed.
type Reason string

const (
	HardBounce      Reason = "hard_bounce"       // permanent recipient failure (5.1.1, NXDOMAIN)
	Unsubscribe     Reason = "unsubscribe"       // the recipient asked (RFC 8058 one-click, RFC 2369 link)
	Complaint       Reason = "complaint"         // a spam report (feedback loop)
	Manual          Reason = "manual"            // an operator decided
	SoftBounceLimit Reason = "soft_bounce_limit" // mailbox full for too long (NoteSoftBounce)
)

// Scope says which mail an entry blocks.
type Scope string

const (
	// Global blocks every lane: the mailbox cannot or must not receive
	// anything from us.
	Global Scope = "global"
	// Marketing blocks the marketing lane only: someone who unsubscribed
	// from a newsletter must still get their password reset.
	Marketing Scope = "marketing"
)

// Lanes a Check is made for.
const (
	LaneMarketing     = "marketing"
	LaneTransactional = "transactional"
)

// MaxDetail bounds the stored reply text. SMTP reply lines are at most 512
// octets (RFC 5321 §4.5.3.1.5); the cap keeps one odd multi-line reply from
// bloating a list of millions.
const MaxDetail = 512

// maxIdent bounds campaign, lane and source names.
const maxIdent = 200

// Entry is one suppressed address or domain.
type Entry struct {
	Address   string // normalised address, or "@domain" for a whole domain
	Reason    Reason
	Scope     Scope
	Code      int    // SMTP reply code that caused it; 0 when none
	Enhanced  string // RFC 3463 enhanced status code, "5.1.1"
	Detail    string // reply text or operator note
	Campaign  string
	Lane      string // lane of the message that caused it
	Source    string // "engine", "one-click", "import", "campaignctl", ...
	FirstSeen time.Time
	LastSeen  time.Time
}

// Domain reports whether the entry covers a whole domain.
func (e Entry) Domain() bool { return strings.HasPrefix(e.Address, "@") }

// Blocks reports whether the entry stops mail of lane.
func (e Entry) Blocks(lane string) bool {
	return e.Scope == Global || lane == LaneMarketing
}

var reasonCode = map[Reason]byte{HardBounce: 'h', Unsubscribe: 'u', Complaint: 'c', Manual: 'm', SoftBounceLimit: 's'}
var codeReason = map[byte]Reason{'h': HardBounce, 'u': Unsubscribe, 'c': Complaint, 'm': Manual, 's': SoftBounceLimit}
var scopeCode = map[Scope]byte{Global: 'g', Marketing: 'm'}
var codeScope = map[byte]Scope{'g': Global, 'm': Marketing}

// ParseReason checks a reason name.
func ParseReason(s string) (Reason, error) {
	r := Reason(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := reasonCode[r]; !ok {
		return "", fmt.Errorf("unknown reason %q (want hard_bounce, unsubscribe, complaint, manual or soft_bounce_limit)", s)
	}
	return r, nil
}

// ParseScope checks a scope name.
func ParseScope(s string) (Scope, error) {
	sc := Scope(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := scopeCode[sc]; !ok {
		return "", fmt.Errorf("unknown scope %q (want global or marketing)", s)
	}
	return sc, nil
}

// DefaultScope is the scope an entry gets when none is given: a request
// not to receive campaigns (unsubscribe, complaint) is marketing-only, while
// an undeliverable mailbox or an operator's block is global.
func DefaultScope(r Reason) Scope {
	if r == Unsubscribe || r == Complaint {
		return Marketing
	}
	return Global
}

var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// ErrInvalidEntry marks an entry that cannot be stored.
var ErrInvalidEntry = errors.New("invalid entry")

// Prepare normalises and validates e in place, filling defaults: scope from
// the reason, times from now. Times are kept to the second, the precision
// of the RFC 3339 export. Add does it itself; Merge takes prepared entries.
func (e *Entry) Prepare(now time.Time) error {
	a, err := Normalize(e.Address)
	if err != nil {
		return err
	}
	e.Address = a
	if e.Reason, err = ParseReason(string(e.Reason)); err != nil {
		return fmt.Errorf("%s: %w: %v", a, ErrInvalidEntry, err)
	}
	if e.Scope == "" {
		e.Scope = DefaultScope(e.Reason)
	} else if e.Scope, err = ParseScope(string(e.Scope)); err != nil {
		return fmt.Errorf("%s: %w: %v", a, ErrInvalidEntry, err)
	}
	if e.Code != 0 && (e.Code < 200 || e.Code > 599) {
		return fmt.Errorf("%s: %w: SMTP code %d out of range", a, ErrInvalidEntry, e.Code)
	}
	if e.Enhanced != "" && !enhancedRE.MatchString(e.Enhanced) {
		return fmt.Errorf("%s: %w: enhanced code %q is not class.subject.detail (RFC 3463)", a, ErrInvalidEntry, e.Enhanced)
	}
	for _, f := range []struct{ name, v string }{{"campaign", e.Campaign}, {"lane", e.Lane}, {"source", e.Source}} {
		if err := CheckName(f.v); err != nil {
			return fmt.Errorf("%s: %w: %s %v", a, ErrInvalidEntry, f.name, err)
		}
	}
	e.Detail = cleanText(e.Detail, MaxDetail)
	e.FirstSeen, e.LastSeen = e.FirstSeen.Truncate(time.Second), e.LastSeen.Truncate(time.Second)
	switch {
	case e.FirstSeen.IsZero() && e.LastSeen.IsZero():
		e.FirstSeen = now.Truncate(time.Second)
		e.LastSeen = e.FirstSeen
	case e.FirstSeen.IsZero():
		e.FirstSeen = e.LastSeen
	case e.LastSeen.IsZero():
		e.LastSeen = e.FirstSeen
	}
	if e.FirstSeen.Unix() < 0 {
		return fmt.Errorf("%s: %w: first_seen %s is before 1970", a, ErrInvalidEntry, e.FirstSeen.Format(time.RFC3339))
	}
	if e.LastSeen.Before(e.FirstSeen) {
		return fmt.Errorf("%s: %w: last_seen %s is before first_seen %s", a, ErrInvalidEntry,
			e.LastSeen.UTC().Format(time.RFC3339), e.FirstSeen.UTC().Format(time.RFC3339))
	}
	e.FirstSeen, e.LastSeen = e.FirstSeen.UTC(), e.LastSeen.UTC()
	return nil
}

// CheckName checks a campaign, lane or source name (an audit actor): at
// most 200 bytes of UTF-8 without control characters.
func CheckName(s string) error {
	if len(s) > maxIdent {
		return fmt.Errorf("longer than %d bytes", maxIdent)
	}
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

// cleanText makes remote reply text safe to store and print: control
// characters (CR LF of multi-line replies, terminal escapes) become spaces,
// invalid UTF-8 is replaced, and the result is cut to max bytes on a rune
// boundary.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}
