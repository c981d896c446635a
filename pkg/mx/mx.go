// Package mx finds the hosts that accept mail for a domain: MX records
// sorted by preference (RFC 5321 §5.1), the implicit MX when there is none,
// and the addresses of each host.
package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Resolver looks up mail exchangers and their addresses.
type Resolver interface {
	// LookupMX returns the domain's mail hosts in the order to try them
	// (lowest preference first, equal preferences shuffled). With no MX
	// record it returns the domain itself (the implicit MX). Failures are
	// returned as *Error so callers can tell permanent from transient.
	LookupMX(ctx context.Context, domain string) ([]string, error)
	// LookupIP returns the addresses of one mail host.
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// Error is a classified resolution failure.
type Error struct {
	Domain    string
	Permanent bool   // NXDOMAIN, null MX: the domain cannot receive mail
	Enhanced  string // RFC 3463 code: 5.1.2 (no such domain), 5.1.10 (null MX), 4.4.3 (DNS failure)
	Msg       string
	Err       error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("mx %s: %s", e.Domain, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as a classified *Error, treating anything
// unclassified as a transient DNS failure (4.4.3).
func AsError(domain string, err error) *Error {
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	return &Error{Domain: domain, Enhanced: "4.4.3", Msg: "lookup failed", Err: err}
}

// Static is a map-backed Resolver for tests and fixed setups. Domains
// missing from MX resolve as NXDOMAIN; hosts missing from IP resolve to
// 127.0.0.1.
type Static struct {
	MX map[string][]string
	IP map[string][]net.IP
}

// LookupMX implements Resolver.
func (s Static) LookupMX(_ context.Context, domain string) ([]string, error) {
	hosts, ok := s.MX[domain]
	if !ok {
		return nil, &Error{Domain: domain, Permanent: true, Enhanced: "5.1.2", Msg: "no such domain"}
	}
	return hosts, nil
}

// LookupIP implements Resolver.
func (s Static) LookupIP(_ context.Context, host string) ([]net.IP, error) {
	if ips, ok := s.IP[host]; ok {
		return ips, nil
	}
	return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
}
