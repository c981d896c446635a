package address

import (
	"strings"

	"golang.org/x/net/idna"
)

// ASCII reports whether s has only ASCII bytes.
func ASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// NeedsSMTPUTF8 reports whether addr's local part is not ASCII: such an
// address has no ASCII form, and only a receiver offering SMTPUTF8 (RFC
// 6531) accepts it. A non-ASCII domain alone does not need it (see
// ASCIIDomain).
func NeedsSMTPUTF8(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	return at >= 0 && !ASCII(addr[:at])
}

// ASCIIDomain returns addr with a non-ASCII domain turned into its A-label
// (IDNA, RFC 5890, with the UTS #46 lookup profile DNS resolution uses):
// "anna@bücher.example" → "anna@xn--bcher-kva.example". When the local
// part is also ASCII the result needs no SMTPUTF8. An address whose
// domain is ASCII, or that IDNA refuses, is returned as it is.
func ASCIIDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || ASCII(addr[at+1:]) {
		return addr
	}
	domain, err := idna.Lookup.ToASCII(addr[at+1:])
	if err != nil {
		return addr
	}
	return addr[:at+1] + domain
}
