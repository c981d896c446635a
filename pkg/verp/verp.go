// Package verp encodes a job id into the envelope sender (Variable
// Envelope Return Path), so a bounce that arrives later, by mail, names
// the job it is about: bounces+<id>@example.com.
package verp

import (
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
