package deliver

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Source is the local end of a delivery: the address a session binds to
// and the name it gives in EHLO. Providers judge reputation per source
// IP, so sessions are pooled per (source, host): a session opened from
// one source never carries a message meant to leave from another.
// The zero Source is the default route with SMTPConfig.Hostname.
type Source struct {
	Name    string // names the source in errors, logs and Outcome.Source
	Address string // local IP to bind; "" lets the kernel choose
	EHLO    string // EHLO/HELO name, matching the address's PTR; "" is SMTPConfig.Hostname
}

// poolKey is the key sessions from s to hostAddr are pooled under.
func (s Source) poolKey(hostAddr string) string {
	if s == (Source{}) {
		return hostAddr
	}
	return s.Name + "|" + s.Address + "|" + s.EHLO + "|" + hostAddr
}

// ehlo is the name s says in EHLO.
func (s Source) ehlo(def string) string {
	if s.EHLO != "" {
		return s.EHLO
	}
	return def
}

// localAddr is the address to bind, nil for the default route.
func (s Source) localAddr() (*net.TCPAddr, error) {
	if s.Address == "" {
		return nil, nil
	}
	ip := net.ParseIP(s.Address)
	if ip == nil {
		return nil, fmt.Errorf("source %q: %q is not an IP address", s.Name, s.Address)
	}
	return &net.TCPAddr{IP: ip}, nil
}

// sameFamily reports whether addr ("ip:port") can be reached from local:
// an IPv4 source cannot dial an IPv6 host, nor the reverse.
func sameFamily(local *net.TCPAddr, addr string) bool {
	if local == nil {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return true // a name: the dialer resolves it and says what fails
	}
	return (local.IP.To4() != nil) == (ip.To4() != nil)
}

// CheckSources binds each source's address once, locally (a listener on
// an ephemeral port, closed at once), so a source whose address is not
// one of this host's fails at start with an error naming it rather than
// at its first delivery. It sends nothing anywhere. Every failing source
// is reported.
func CheckSources(sources []Source) error {
	var errs []error
	for _, s := range sources {
		if err := checkSource(s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkSource(s Source) error {
	if s.EHLO != "" && strings.ContainsAny(s.EHLO, " \t\r\n<>") {
		return fmt.Errorf("source %q: EHLO name %q is not a host name", s.Name, s.EHLO)
	}
	local, err := s.localAddr()
	if err != nil || local == nil {
		return err
	}
	ln, err := net.ListenTCP("tcp", local)
	if err != nil {
		return fmt.Errorf("source %q: cannot bind address %s (is it configured on this host?): %w", s.Name, s.Address, err)
	}
	if err := ln.Close(); err != nil {
		return fmt.Errorf("source %q: %w", s.Name, err)
	}
	return nil
}
