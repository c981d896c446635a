package mx

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/sluice-mta/sluice/pkg/address"
)

// normalize turns a domain as written in an address into the lower-case
// FQDN to query. Internationalised names are converted to A-labels (RFC
// 5890, with the UTS #46 lookup profile) since DNS holds only those.
func normalize(domain string) (string, error) {
	name := strings.TrimSuffix(domain, ".")
	if name == "" {
		return "", errors.New("empty domain")
	}
	if !address.ASCII(name) {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("internationalised domain %q: %w", domain, err)
		}
		name = a
	}
	name = strings.ToLower(name) + "."
	// RFC 1035 §2.3.4: 63 octets a label, 255 a name on the wire (253 in
	// text form plus the root).
	if n, ok := dns.IsDomainName(name); !ok || n < 1 || len(name) > 254 {
		return "", fmt.Errorf("%q is not a valid domain name", domain)
	}
	for _, l := range dns.SplitDomainName(name) {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("%q has an empty or over-long label", domain)
		}
		// Letters, digits and hyphens (RFC 5321 §4.1.2 Domain); the
		// underscore is tolerated since real MX targets use it.
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q: character %q not allowed in a domain", domain, c)
			}
		}
	}
	return name, nil
}

// addressLiteral parses "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321
// §4.1.3); anything else gives nil.
func addressLiteral(s string) net.IP {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil
	}
	inner := s[1 : len(s)-1]
	if len(inner) > 5 && strings.EqualFold(inner[:5], "ipv6:") {
		if ip := net.ParseIP(inner[5:]); ip != nil && ip.To4() == nil {
			return ip
		}
		return nil
	}
	if ip := net.ParseIP(inner); ip != nil && ip.To4() != nil {
		return ip
	}
	return nil
}
