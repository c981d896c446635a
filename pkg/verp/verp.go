// Package verp encodes a job id into the envelope sender (Variable
// Envelope Return Path), so a bounce that arrives later, by mail, names
// the job it is about: bounces+<id>@example.com.
//
// The Message-ID of a rendered campaign message carries the job id the
// same way (MessageID, FromMessageID), so a report that arrives without a
// VERP address (VERP off, a forwarded ARF) still names its job through
// the original Message-ID it quotes. A transactional message keeps its
// client's Message-ID; the index in Redis (Remember, Find) maps it to its
// jobs.
package verp

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// Separator joins the return path's local part and the encoded id.
const Separator = "+"

// enc is base32 without padding, lower-cased on output: it survives
// receivers that change the case of local parts, and keeps within the
// characters RFC 5321 §4.1.2 allows in a dot-string.
var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Encode returns returnPath with id folded into its local part.
func Encode(returnPath, id string) (string, error) {
	local, domain, ok := strings.Cut(returnPath, "@")
	if !ok || local == "" || domain == "" {
		return "", fmt.Errorf("verp: return path %q is not local@domain", returnPath)
	}
	if i := strings.Index(local, Separator); i >= 0 {
		local = local[:i] // a return path that is already tagged
	}
	out := local + Separator + strings.ToLower(enc.EncodeToString([]byte(id))) + "@" + domain
	// RFC 5321 §4.5.3.1.1: a local part may be at most 64 octets.
	if len(out)-len(domain)-1 > 64 {
		return "", fmt.Errorf("verp: job id %q makes the local part longer than 64 octets", id)
	}
	return out, nil
}

// Decode returns the job id carried by a VERP address (the recipient of
// an asynchronous bounce).
func Decode(addr string) (string, error) {
	local, _, ok := strings.Cut(addr, "@")
	if !ok {
		return "", fmt.Errorf("verp: %q is not an address", addr)
	}
	i := strings.LastIndex(local, Separator)
	if i < 0 {
		return "", fmt.Errorf("verp: %q carries no job id", addr)
	}
	id, err := enc.DecodeString(strings.ToUpper(local[i+1:]))
	if err != nil {
		return "", fmt.Errorf("verp: %q: %w", addr, err)
	}
	return string(id), nil
}

// MessageID returns a Message-ID, "<TOKEN.RANDOM@domain>", that carries
// id: TOKEN is id encoded as in a VERP local part (lower-case base32),
// RANDOM 26 random base32 characters (crypto/rand). It returns "" when
// id is empty or domain is not a plain ASCII domain, so the caller falls
// back to a random Message-ID.
func MessageID(id, domain string) string {
	if id == "" || domain == "" {
		return ""
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return ""
		}
	}
	// Built in one buffer: every campaign message gets one.
	var b strings.Builder
	b.Grow(1 + lowerEnc.EncodedLen(len(id)) + 1 + 26 + 1 + len(domain) + 1)
	b.WriteByte('<')
	var tmp [96]byte
	b.Write(lowerEnc.AppendEncode(tmp[:0], []byte(id)))
	b.WriteByte('.')
	b.WriteString(rand.Text())
	b.WriteByte('@')
	b.WriteString(domain)
	b.WriteByte('>')
	return b.String()
}

// lowerEnc is enc with a lower-case alphabet: the same text as
// strings.ToLower of enc's.
var lowerEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// FromMessageID returns the job id carried by a Message-ID made by
// MessageID (with or without angle brackets, in any case); ok is false
// for any other Message-ID.
func FromMessageID(mid string) (id string, ok bool) {
	mid = strings.Trim(strings.TrimSpace(mid), "<>")
	left, _, found := strings.Cut(mid, "@")
	if !found {
		return "", false
	}
	tok, random, found := strings.Cut(left, ".")
	if !found || tok == "" || len(random) != 26 || strings.Contains(random, ".") {
		return "", false
	}
	if _, err := enc.DecodeString(strings.ToUpper(random)); err != nil {
		return "", false
	}
	b, err := enc.DecodeString(strings.ToUpper(tok))
	if err != nil {
		return "", false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f { // sluice's job ids are printable ASCII
			return "", false
		}
	}
	return string(b), true
}
