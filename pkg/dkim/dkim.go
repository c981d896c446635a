// Package dkim signs outgoing messages with DKIM (RFC 6376): one signature
// per configured key of the sender's domain, so a domain with an RSA and an
// Ed25519 key gets both (RFC 8463 §6 recommends the pair while verifiers
// catch up with Ed25519).
//
// RSA signatures are made by crypto/rsa, or by OpenSSL's libcrypto in a
// build with -tags openssl (about 3x the messages per core; see
// Backend and BENCHMARKS.md). Both produce the same bytes.
package dkim

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/text"
)

// signedHeaders are signed when present, in this order (RFC 6376 §5.4.1
// lists From, Subject, Date, To, ...; the List-Unsubscribe pair must be
// signed for RFC 8058 one-click unsubscribe to be honoured).
var signedHeaders = []string{
	"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
	"Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// Signer signs messages with keys loaded once. It is safe for concurrent
// use.
type Signer struct {
	keys    map[string][]*key // by lower-case domain
	domains []string
	// signed maps a lower-case header name to its canonical spelling.
	signed map[string]string
}

// key is one prepared signing key.
type key struct {
	file string
	opts msgauth.SignOptions // complete except HeaderKeys, set per message
}

// NewSigner loads and checks every key. Keys are PEM files: RSA (PKCS#1 or
// PKCS#8, 2048 to 4096 bits) or Ed25519 (PKCS#8).
func NewSigner(keys []config.DKIM) (*Signer, error) {
	b, err := backend()
	if err != nil {
		return nil, err
	}
	s := &Signer{keys: map[string][]*key{}, signed: map[string]string{}}
	for _, h := range signedHeaders {
		s.signed[strings.ToLower(h)] = h
	}
	seen := map[string]bool{}
	for i, k := range keys {
		domain := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(k.Domain), "."))
		if err := checkName(domain); err != nil {
			return nil, fmt.Errorf("dkim: key %d (%s): domain: %w", i+1, k.KeyFile, err)
		}
		sel := strings.ToLower(strings.TrimSpace(k.Selector))
		if err := checkName(sel); err != nil {
			return nil, fmt.Errorf("dkim: key %d (%s) for %s: selector: %w", i+1, k.KeyFile, domain, err)
		}
		if seen[sel+"._domainkey."+domain] {
			return nil, fmt.Errorf("dkim: selector %q of %s is configured twice", sel, domain)
		}
		seen[sel+"._domainkey."+domain] = true
		signer, err := LoadKey(k.KeyFile)
		if err != nil {
			return nil, err
		}
		if signer, err = withBackend(b, signer); err != nil {
			return nil, fmt.Errorf("dkim: key file %s: %w", k.KeyFile, err)
		}
		s.keys[domain] = append(s.keys[domain], &key{file: k.KeyFile, opts: msgauth.SignOptions{
			Domain:   domain,
			Selector: sel,
			Signer:   signer,
			Hash:     crypto.SHA256,
			// relaxed/relaxed survives the re-folding and whitespace
			// changes relays make (RFC 6376 §3.4).
			HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
			BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		}})
	}
	for d := range s.keys {
		s.domains = append(s.domains, d)
	}
	slices.Sort(s.domains)
	return s, nil
}

// Domains lists the domains that have keys, sorted.
func (s *Signer) Domains() []string { return slices.Clone(s.domains) }

// Sign returns msg with a DKIM-Signature header field prepended for each
// key of domain. Line endings are made CRLF first (text.CRLF), so the
// bytes returned are the bytes signed and must be sent as they are. A
// domain without a key gets msg back unchanged.
func (s *Signer) Sign(domain string, msg []byte) ([]byte, error) {
	keys := s.keys[strings.ToLower(strings.TrimSuffix(domain, "."))]
	if len(keys) == 0 {
		return msg, nil
	}
	if len(msg) == 0 {
		return nil, fmt.Errorf("dkim: %s: empty message", domain)
	}
	msg = text.CRLF(msg)
	fields, msg, err := headerFields(msg)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", domain, err)
	}
	sigs, err := s.signatures(domain, keys, fields, [][]byte{msg})
	if err != nil {
		return nil, err
	}
	return append(sigs, msg...), nil
}

// SignParts signs a message given as CRLF-canonical pieces written in
// turn (a message.Message's Parts) and returns the DKIM-Signature fields
// to send in front of them: the pieces are hashed as they are, never
// joined (unless the header section does not end in the first one). A
// domain without a key gets nil. Pieces that are not CRLF-canonical
// together are an error: canonicalising them would change what is sent.
func (s *Signer) SignParts(domain string, parts [][]byte) ([]byte, error) {
	keys := s.keys[strings.ToLower(strings.TrimSuffix(domain, "."))]
	if len(keys) == 0 {
		return nil, nil
	}
	if !text.IsCRLFParts(parts) {
		return nil, fmt.Errorf("dkim: %s: message pieces are not CRLF-canonical", domain)
	}
	first := parts[0]
	if end := bytes.Index(first, []byte("\r\n\r\n")); end < 0 || bytes.HasPrefix(first, []byte("\r\n")) {
		first = bytes.Join(parts, nil)
		parts = [][]byte{first}
	}
	fields, msg, err := headerFields(first)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", domain, err)
	}
	if len(parts) == 1 {
		parts = [][]byte{msg} // headerFields may have added the empty body
	}
	return s.signatures(domain, keys, fields, parts)
}

// signatures makes one DKIM-Signature field per key over the pieces of a
// canonical message whose header field names are fields.
func (s *Signer) signatures(domain string, keys []*key, fields []string, parts [][]byte) ([]byte, error) {
	hkeys, err := s.headerKeys(fields)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", domain, err)
	}
	var out []byte
	for _, k := range keys {
		sig, err := k.sign(parts, hkeys)
		if err != nil {
			return nil, fmt.Errorf("dkim: sign for %s with %s: %w", domain, k.file, err)
		}
		out = append(out, sig...)
	}
	return out, nil
}

// headerKeys is the h= list for a message with the given header field
// names: the signed headers present, each as often as it occurs, and From
// once more. The extra From makes the signature break if another From is
// added in transit (RFC 6376 §8.15, "over-signing").
func (s *Signer) headerKeys(fields []string) ([]string, error) {
	count := map[string]int{}
	for _, f := range fields {
		if _, ok := s.signed[f]; ok {
			count[f]++
		}
	}
	if count["from"] == 0 {
		return nil, errors.New("message has no From header field")
	}
	if count["from"] > 1 {
		// RFC 5322 §3.6 allows exactly one; receivers reject the rest
		// (and DMARC cannot tell which one is the author).
		return nil, errors.New("message has more than one From header field")
	}
	var out []string
	for _, h := range signedHeaders {
		for range count[strings.ToLower(h)] {
			out = append(out, h)
		}
	}
	return append(out, "From"), nil
}

func (k *key) sign(parts [][]byte, hkeys []string) (string, error) {
	opts := k.opts
	opts.HeaderKeys = hkeys
	signer, err := msgauth.NewSigner(&opts)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if _, err := signer.Write(p); err != nil {
			_ = signer.Close()
			return "", err
		}
	}
	if err := signer.Close(); err != nil {
		return "", err
	}
	return signer.Signature(), nil
}

// headerFields returns the lower-case names of the header fields in
// order, and msg, given an empty body if it had none (the signer needs
// the blank line that ends the header).
func headerFields(msg []byte) ([]string, []byte, error) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	var hdr []byte
	switch {
	case bytes.HasPrefix(msg, []byte("\r\n")):
		return nil, nil, errors.New("message has no header")
	case end >= 0:
		hdr = msg[:end+2]
	case bytes.HasSuffix(msg, []byte("\r\n")):
		hdr, msg = msg, append(msg[:len(msg):len(msg)], "\r\n"...)
	default:
		hdr, msg = msg, append(msg[:len(msg):len(msg)], "\r\n\r\n"...)
	}
	var names []string
	for n, line := range bytes.Split(bytes.TrimSuffix(hdr, []byte("\r\n")), []byte("\r\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if n == 0 {
				return nil, nil, errors.New("message starts with a continuation line")
			}
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return nil, nil, fmt.Errorf("malformed header line %d: %.40q", n+1, line)
		}
		names = append(names, strings.ToLower(string(name)))
	}
	return names, msg, nil
}
