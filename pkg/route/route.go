// Package route is sluice's transport map: it sends mail for matching
// recipient domains to a fixed host instead of the domain's MX, like
// Postfix's transport_maps. Used for smarthosts and local test receivers.
package route

import (
	"fmt"
	"net"
	"path"
	"strings"
)

// Route sends domains matching Match (a glob: "*.example", "example.test",
// "*") to Host ("host:port").
type Route struct {
	Match string `yaml:"match"`
	Host  string `yaml:"host"`
	// RequireTLS refuses to deliver over this route without STARTTLS.
	RequireTLS bool `yaml:"require_tls"`
}

// Table is an ordered list of routes; the first match wins.
type Table []Route

// Validate checks every route's glob and host:port.
func (t Table) Validate() error {
	for i, r := range t {
		if r.Match == "" {
			return fmt.Errorf("routes[%d]: match is empty", i)
		}
		if _, err := path.Match(strings.ToLower(r.Match), "x"); err != nil {
			return fmt.Errorf("routes[%d]: bad match %q: %w", i, r.Match, err)
		}
		if _, _, err := net.SplitHostPort(r.Host); err != nil {
			return fmt.Errorf("routes[%d]: host %q must be host:port: %w", i, r.Host, err)
		}
	}
	return nil
}

// Lookup returns the route for domain, if any.
func (t Table) Lookup(domain string) (Route, bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, r := range t {
		if ok, _ := path.Match(strings.ToLower(r.Match), domain); ok {
			return r, true
		}
	}
	return Route{}, false
}
