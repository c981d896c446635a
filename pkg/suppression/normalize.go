package suppression

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidAddress marks input that is neither an address nor "@domain".
var ErrInvalidAddress = errors.New("invalid address")

// Normalize returns the form an address is stored and looked up under:
// surrounding space and angle brackets removed, then lower-cased, domain
// without a trailing dot. "@domain" (a whole domain) keeps its form.
//
// The local part is lower-cased too, although RFC 5321 §2.4 lets a server
// treat it case-sensitively. No major mailbox provider does, and the two
// mistakes are not equal: folding wrongly merges two mailboxes on one odd
// server, not folding mails someone who unsubscribed as "John@" under
// "john@", which breaks the law (CAN-SPAM, GDPR) and hurts reputation. A
// suppression list errs on the side of blocking, so there is no switch.
// Provider-specific aliases (Gmail dots, "+tag") are not folded: they are
// not universal and folding them would block other people's mailboxes.
//
// Quoted local parts and domain literals ("[192.0.2.1]") are rejected:
// bulk mail never goes to them, and accepting them would make equality of
// two spellings ambiguous. Internationalised domains are compared as
// written (U-labels and A-labels are not unified).
func Normalize(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidAddress)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w %q: not UTF-8", ErrInvalidAddress, addr)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("%w %q: no @ (write @%s to suppress a whole domain)", ErrInvalidAddress, addr, s)
	}
	domain, err := normDomain(s[at+1:])
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidAddress, addr, err)
	}
	if at == 0 {
		return "@" + domain, nil
	}
	local := strings.ToLower(s[:at])
	if err := checkLocal(local); err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidAddress, addr, err)
	}
	out := s // already local@domain, as nearly every address is: no new string
	if local != s[:at] || domain != s[at+1:] {
		out = local + "@" + domain
	}
	if len(out) > 254 { // RFC 5321 §4.5.3.1.3 path limit less the brackets
		return "", fmt.Errorf("%w %q: longer than 254 octets", ErrInvalidAddress, addr)
	}
	return out, nil
}

func checkLocal(l string) error {
	if len(l) > 64 { // RFC 5321 §4.5.3.1.1
		return errors.New("local part longer than 64 octets")
	}
	for _, r := range l {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>()[]\,;:"@`, r) {
			return fmt.Errorf("local part contains %q (quoted local parts are not accepted)", r)
		}
	}
	return nil
}

func normDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	if strings.HasPrefix(d, "[") {
		return "", errors.New("domain literals are not accepted")
	}
	if len(d) > 253 {
		return "", errors.New("domain longer than 253 octets")
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("bad domain label %q", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("domain label %q starts or ends with a hyphen", label)
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') ||
				(r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)))
			if !ok {
				return "", fmt.Errorf("domain contains %q", r)
			}
		}
	}
	return d, nil
}
