// Package address checks and normalises one bare e-mail address, the form
// recipients, senders and API callers give.
package address

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Normalize checks that s is one bare address (local@domain, an
// RFC 5322 §3.4.1 addr-spec) and returns it with surrounding space
// trimmed and the domain lower-cased. The local part is kept as is: RFC
// 5321 §2.4 lets the receiving host treat it case-sensitively.
//
// Display names, angle brackets, comments and lists are refused rather
// than stripped: a list row holding "Bob <bob@example.com>" is a sign the
// column is not what the sender thinks, and guessing could mail the wrong
// person.
func Normalize(s string) (string, error) {
	// The common case first: dot-atom@dot-atom holds no space, line
	// break, NUL or angle bracket, and is already in the form net/mail
	// would return.
	if local, domain, ok := dotAtomAddr(s); ok {
		return finish(s, local, domain)
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("invalid address %q: contains a line break or NUL", s)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("missing email address")
	}
	if strings.ContainsAny(s, "<>") {
		return "", fmt.Errorf("invalid address %q: want a bare address, without display name or angle brackets", s)
	}
	if local, domain, ok := dotAtomAddr(s); ok { // trimmed
		return finish(s, local, domain)
	}
	// Say plainly what net/mail would report obliquely.
	switch at := strings.LastIndexByte(s, '@'); {
	case at < 0:
		return "", fmt.Errorf("invalid address %q: no @", s)
	case at == len(s)-1:
		return "", fmt.Errorf("invalid address %q: no domain after @", s)
	case at == 0:
		return "", fmt.Errorf("invalid address %q: no local part before @", s)
	case len(s) > 7 && strings.EqualFold(s[:7], "mailto:"):
		return "", fmt.Errorf("invalid address %q: want the bare address, without mailto:", s)
	}
	if !strings.HasPrefix(s, `"`) && strings.ContainsAny(s, " \t") {
		return "", fmt.Errorf("invalid address %q: contains whitespace", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("invalid address %q: %s", s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	if a.Name != "" {
		return "", fmt.Errorf("invalid address %q: want a bare address, without display name", s)
	}
	if bare := bareAddr(a); bare != s {
		return "", fmt.Errorf("invalid address %q: not a bare address (did you mean %q?)", s, bare)
	}
	at := strings.LastIndexByte(s, '@')
	return finish(s, s[:at], s[at+1:])
}

// finish applies the length and domain rules to a syntactically valid
// addr-spec s = local@domain.
func finish(s, local, domain string) (string, error) {
	// RFC 5321 §4.5.3.1: 64 octets of local part, 254 of path less the
	// angle brackets; receivers commonly enforce both.
	if len(local) > 64 {
		return "", fmt.Errorf("invalid address %q: local part longer than 64 octets", s)
	}
	if len(s) > 254 {
		return "", fmt.Errorf("invalid address %q: longer than 254 octets", s)
	}
	if err := checkDomain(domain); err != nil {
		return "", fmt.Errorf("invalid address %q: %w", s, err)
	}
	if lower := strings.ToLower(domain); lower != domain {
		return local + "@" + lower, nil
	}
	return s, nil // local@domain already
}

// dotAtomAddr reports whether s is dot-atom@dot-atom (RFC 5322 §3.4.1
// without quoted strings or literals), the form nearly every list holds;
// such an address is already in the form net/mail would return.
func dotAtomAddr(s string) (local, domain string, ok bool) {
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", "", false
	}
	local, domain = s[:at], s[at+1:]
	return local, domain, dotAtom(local) && dotAtom(domain)
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !atext[c] && (c != '.' || s[i-1] == '.') {
			return false
		}
	}
	return true
}

// atext is RFC 5322 §3.2.3 atext, plus UTF-8 bytes (RFC 6532 §3.2).
var atext = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", byte(c)) >= 0
	}
	return t
}()

// bareAddr is a's addr-spec as net/mail writes it: a needlessly quoted
// local part loses its quotes, a comment is gone.
func bareAddr(a *mail.Address) string {
	s := (&mail.Address{Address: a.Address}).String()
	return s[1 : len(s)-1]
}

// checkDomain wants a host name that mail can be routed to: at least two
// labels (a bare "gmail" is a typo, not a destination) of letters, digits
// and inner hyphens (RFC 1035 §2.3.1), or UTF-8 labels of an
// internationalised name. Address literals ("[192.0.2.1]") are refused:
// bulk mail is never sent to one.
func checkDomain(d string) error {
	if strings.HasPrefix(d, "[") {
		return errors.New("address literals are not supported")
	}
	if len(d) > 253 {
		return errors.New("domain longer than 253 octets")
	}
	if !strings.Contains(d, ".") {
		return fmt.Errorf("domain %q has no dot", d)
	}
	for l := range strings.SplitSeq(d, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("domain %q has an empty or over-long label", d)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("domain %q has a label starting or ending with '-'", d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 0x80 || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return fmt.Errorf("domain %q contains %q", d, c)
			}
		}
	}
	return nil
}
