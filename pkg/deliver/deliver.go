package deliver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/route"
)

// Envelope is the SMTP envelope of one delivery: one sender, one recipient.
type Envelope struct {
	From string // MAIL FROM (Return-Path); "" is the null sender
	To   string // RCPT TO
}

// Host is one place to connect to.
type Host struct {
	Name string // host name or IP literal
	Port int
	// Routed hosts come from the transport map and are resolved with the
	// system resolver; MX hosts are resolved with the mx.Resolver.
	Routed bool
}

// Addr is "name:port": the address to dial when Name is an IP literal,
// and the key sessions are pooled and counted by (see SMTP.Open).
func (h Host) Addr() string { return joinHostPort(h.Name, h.Port) }

// Destination is where a recipient domain's mail goes: the hosts to try in
// order, and the throttle key that groups destinations sharing limits.
type Destination struct {
	Domain     string
	Hosts      []Host
	RequireTLS bool
	// Key identifies the receiving infrastructure: the sorted set of MX
	// host names (or the route target), so every domain hosted on the same
	// MX set shares one key. The throttle rolls keys up into providers.
	Key string
	// MaxMessagesPerConn caps transactions per session for this send (the
	// provider's throttle limits); 0 takes SMTPConfig.MaxMessagesPerConn.
	MaxMessagesPerConn int
	// Source is where this send leaves from (the engine picks one of the
	// lane's or campaign's pool per attempt); the zero Source is the
	// default route with SMTPConfig.Hostname.
	Source Source
	// Slots, when set, are the connection slots of the send's throttle
	// key: its session holds one from dial to close (see pool.go).
	Slots Slots
}

// HostNames lists the names of d's hosts, in order.
func (d Destination) HostNames() []string {
	names := make([]string, len(d.Hosts))
	for i, h := range d.Hosts {
		names[i] = h.Name
	}
	return names
}

// Router decides where a domain's mail goes: the transport map first, then
// the domain's MX records.
type Router struct {
	Routes   route.Table
	Resolver mx.Resolver
	Port     int // destination port for MX hosts (25; tests use loopback ports)
}

// Resolve returns the destination for domain. A failed resolution comes
// back as a classified Outcome (bounce for NXDOMAIN/null MX, deferral for
// SERVFAIL and timeouts) with ok false.
func (r *Router) Resolve(ctx context.Context, domain string) (Destination, outcome.Outcome, bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if rt, ok := r.Routes.Lookup(domain); ok {
		name, portStr, _ := splitHostPort(rt.Host)
		port, _ := strconv.Atoi(portStr)
		return Destination{
			Domain:     domain,
			Hosts:      []Host{{Name: name, Port: port, Routed: true}},
			RequireTLS: rt.RequireTLS,
			Key:        "route:" + rt.Host,
		}, outcome.Outcome{}, true
	}
	if r.Resolver == nil {
		return Destination{}, outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeDomain, Stage: outcome.StageRoute,
			Enhanced: "4.4.3", Text: "no route and no DNS resolver configured"}, false
	}
	names, err := r.Resolver.LookupMX(ctx, domain)
	if err != nil {
		return Destination{}, resolveOutcome(mx.AsError(domain, err)), false
	}
	if len(names) == 0 { // a resolver returns the implicit MX at least
		return Destination{}, outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeDomain, Stage: outcome.StageRoute, Enhanced: "4.4.3",
			Text: fmt.Sprintf("mx %s: no mail hosts returned", domain)}, false
	}
	port := r.Port
	if port == 0 {
		port = 25
	}
	d := Destination{Domain: domain}
	for _, n := range names {
		d.Hosts = append(d.Hosts, Host{Name: n, Port: port})
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	d.Key = "mx:" + strings.Join(sorted, ",")
	return d, outcome.Outcome{}, true
}

// resolveOutcome turns a DNS failure into an Outcome (RFC 7505 null MX is
// 5.1.10, a nonexistent domain 5.1.2; anything else is transient).
func resolveOutcome(e *mx.Error) outcome.Outcome {
	o := outcome.Outcome{Stage: outcome.StageRoute, Enhanced: e.Enhanced, Text: e.Error()}
	if e.Permanent {
		o.Status, o.Scope = outcome.Bounced, outcome.ScopeDomain
	} else {
		o.Status, o.Scope = outcome.Deferred, outcome.ScopeDomain
	}
	return o
}
