// Package unsubscribe makes and serves RFC 8058 one-click unsubscribe
// links: a signed token names the recipient, campaign and scope, so a
// click needs no per-message state and no login, and cannot be forged for
// someone else.
package unsubscribe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

// ErrInvalidToken is returned for any token that does not verify: damaged,
// tampered with, or signed with another secret. Which of these is not
// said, so a prober learns nothing.
var ErrInvalidToken = errors.New("unsubscribe: invalid token")

// MinSecret is the shortest secret accepted: 128 bits, the strength of the
// truncated MAC.
const MinSecret = 16

const (
	tokenVersion = 1
	// macLen is the truncated HMAC-SHA256 length: 128 bits, more than the
	// 80 bits and half the hash length RFC 2104 §5 asks of a truncated
	// MAC. Guessing a valid token for another address takes 2^128 tries.
	macLen = 16
	// maxToken bounds what Parse decodes: an address is at most 254
	// octets, a campaign ID short; this leaves room and rejects junk early.
	maxToken = 1024
)

// keyLabel separates this use of the configured secret from any other, so
// the same secret used elsewhere never yields a valid token.
const keyLabel = "sluice unsubscribe token v1"

// Signer makes and checks tokens.
type Signer struct {
	keys [][]byte // keys[0] signs; all verify
}

// NewSigner returns a Signer for secret (at least MinSecret bytes). Old
// secrets, if given, still verify tokens but never sign: rotate the secret
// without breaking the links of mail already delivered, which recipients
// keep clicking for months.
func NewSigner(secret []byte, old ...[]byte) (*Signer, error) {
	s := &Signer{}
	for i, k := range append([][]byte{secret}, old...) {
		if len(k) < MinSecret {
			return nil, fmt.Errorf("unsubscribe: secret %d is %d bytes; at least %d needed", i, len(k), MinSecret)
		}
		m := hmac.New(sha256.New, k)
		m.Write([]byte(keyLabel))
		s.keys = append(s.keys, m.Sum(nil))
	}
	return s, nil
}

// Token returns the URL-safe token for a recipient's unsubscribe from
// campaign: base64url(version, scope, campaign, address, MAC). The address
// is normalised (suppression.Normalize); an empty scope means marketing,
// the normal scope of an unsubscribe. It is readable by whoever holds the
// link (the recipient), which is fine: the MAC is what matters.
func (s *Signer) Token(addr, campaign string, scope suppression.Scope) string {
	if a, err := suppression.Normalize(addr); err == nil {
		addr = a
	} else {
		addr = strings.ToLower(strings.TrimSpace(addr)) // Parse will refuse it
	}
	sc := byte('m')
	if scope == suppression.Global {
		sc = 'g'
	}
	p := make([]byte, 0, 2+binary.MaxVarintLen64+len(campaign)+len(addr)+macLen)
	p = append(p, tokenVersion, sc)
	p = binary.AppendUvarint(p, uint64(len(campaign)))
	p = append(p, campaign...)
	p = append(p, addr...)
	p = append(p, mac(s.keys[0], p)...)
	return base64.RawURLEncoding.EncodeToString(p)
}

// Parse verifies token and returns what it names. The MAC is compared in
// constant time, against each secret.
func (s *Signer) Parse(token string) (addr, campaign string, scope suppression.Scope, err error) {
	if len(token) > maxToken {
		return "", "", "", ErrInvalidToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 3+macLen {
		return "", "", "", ErrInvalidToken
	}
	p, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	ok := false
	for _, k := range s.keys {
		ok = hmac.Equal(sum, mac(k, p)) || ok // try every key: time does not tell which matched
	}
	if !ok || p[0] != tokenVersion {
		return "", "", "", ErrInvalidToken
	}
	switch p[1] {
	case 'm':
		scope = suppression.Marketing
	case 'g':
		scope = suppression.Global
	default:
		return "", "", "", ErrInvalidToken
	}
	n, w := binary.Uvarint(p[2:])
	rest := p[2+max(w, 0):]
	if w <= 0 || n > uint64(len(rest)) {
		return "", "", "", ErrInvalidToken
	}
	campaign, addr = string(rest[:n]), string(rest[n:])
	if a, err := suppression.Normalize(addr); err != nil || a != addr || bytes.ContainsAny([]byte(campaign), "\x00\r\n") {
		return "", "", "", ErrInvalidToken
	}
	return addr, campaign, scope, nil
}

func mac(key, p []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(p)
	return m.Sum(nil)[:macLen]
}

// URL is the one-click link for token: baseURL + "/u/" + token. Put it in
// List-Unsubscribe as <URL> (RFC 2369) together with the header
// "List-Unsubscribe-Post: List-Unsubscribe=One-Click" (RFC 8058 §3.1).
func URL(baseURL, token string) string {
	return strings.TrimRight(baseURL, "/") + "/u/" + token
}

// PostHeader is the List-Unsubscribe-Post header value of RFC 8058 §3.1,
// which is also the body a mailbox provider POSTs.
const PostHeader = "List-Unsubscribe=One-Click"
