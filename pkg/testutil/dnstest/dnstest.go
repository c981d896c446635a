// Package dnstest runs an in-process DNS server on loopback (UDP and TCP on
// one port) that answers from zone data the test gives, so resolvers can be
// tested over real sockets: NXDOMAIN, NODATA with an SOA, CNAME chains,
// scripted failures, forced truncation, and a count of every query.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// NegativeTTL is the TTL and SOA MINIMUM of the SOA synthesised for
// negative answers when the zone data holds no SOA of its own (RFC 2308 §5
// takes the smaller of the two as the negative-cache TTL).
const NegativeTTL = 60

type key struct {
	name  string // lower-case FQDN
	qtype uint16
}

// Server is a running DNS server.
type Server struct {
	Addr string // "127.0.0.1:port", UDP and TCP

	t        testing.TB
	udp, tcp *dns.Server

	mu       sync.Mutex
	rrs      map[key][]dns.RR
	rcode    map[key]int     // scripted reply code by name and type (0: any type)
	drop     map[string]bool // names never answered
	truncate bool            // every UDP reply has TC set and no records
	noChase  bool            // answer CNAMEs without following them
	queries  map[key]int
	tcpQs    map[key]int
	total    int
}

// Start serves rrs (zone-file syntax, e.g. "example.test. 300 IN MX 10
// mx1.example.test.") until the test ends.
func Start(t testing.TB, rrs ...string) *Server {
	t.Helper()
	s := &Server{
		t:       t,
		rrs:     map[key][]dns.RR{},
		rcode:   map[key]int{},
		drop:    map[string]bool{},
		queries: map[key]int{},
		tcpQs:   map[key]int{},
	}
	s.Add(rrs...)
	pc, ln, err := listen()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.udp = s.serve(&dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.handle)})
	s.tcp = s.serve(&dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.handle)})
	t.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
	return s
}

// listen finds a port free for both UDP and TCP on 127.0.0.1.
func listen() (net.PacketConn, net.Listener, error) {
	var last error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln, nil
		}
		last = err
		_ = ln.Close()
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP: %w", last)
}

func (s *Server) serve(srv *dns.Server) *dns.Server {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	return srv
}

// Add appends records (zone-file syntax) while the server runs.
func (s *Server) Add(rrs ...string) {
	s.t.Helper()
	parsed := s.parse(rrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range parsed {
		k := keyOf(rr)
		s.rrs[k] = append(s.rrs[k], rr)
	}
}

// Replace sets the records given, dropping every record previously held
// for the same name and type.
func (s *Server) Replace(rrs ...string) {
	s.t.Helper()
	parsed := s.parse(rrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range parsed {
		delete(s.rrs, keyOf(rr))
	}
	for _, rr := range parsed {
		k := keyOf(rr)
		s.rrs[k] = append(s.rrs[k], rr)
	}
}

// Remove drops every record of name and type.
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rrs, key{fqdn(name), qtype})
}

// SetRcode answers every query for name with rcode (dns.RcodeServerFailure,
// dns.RcodeRefused, ...); dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) { s.SetRcodeType(name, 0, rcode) }

// SetRcodeType is SetRcode for queries of one type only (qtype 0: all).
func (s *Server) SetRcodeType(name string, qtype uint16, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{fqdn(name), qtype}
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, k)
		return
	}
	s.rcode[k] = rcode
}

// ServFail answers every query for name with SERVFAIL.
func (s *Server) ServFail(name string) { s.SetRcode(name, dns.RcodeServerFailure) }

// SetDrop makes queries for name go unanswered (the client times out).
func (s *Server) SetDrop(name string, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop[fqdn(name)] = drop
}

// SetTruncate makes every UDP reply truncated (TC set, no records), so a
// client must retry over TCP (RFC 1035 §4.2.1, RFC 7766).
func (s *Server) SetTruncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// SetChaseCNAME controls whether a CNAME is followed within the zone data
// (the default, as an authoritative server does for in-zone targets) or
// returned alone, leaving the client to query the target.
func (s *Server) SetChaseCNAME(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noChase = !on
}

// Queries is how many queries for name and type arrived (UDP and TCP).
func (s *Server) Queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key{fqdn(name), qtype}]
}

// TCPQueries is how many queries for name and type arrived over TCP.
func (s *Server) TCPQueries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpQs[key{fqdn(name), qtype}]
}

// TotalQueries is how many queries arrived in all.
func (s *Server) TotalQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// TXT returns a TXT record for value in zone-file syntax, split into
// strings of at most 255 bytes as RFC 1035 §3.3.14 requires (a 2048-bit
// DKIM key does not fit in one).
func TXT(name string, ttl uint32, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, quote(value[:255]))
		value = value[255:]
	}
	parts = append(parts, quote(value))
	return fmt.Sprintf("%s %d IN TXT %s", dns.Fqdn(name), ttl, strings.Join(parts, " "))
}

func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

func (s *Server) parse(rrs []string) []dns.RR {
	s.t.Helper()
	out := make([]dns.RR, 0, len(rrs))
	for _, str := range rrs {
		rr, err := dns.NewRR(str)
		if err != nil {
			s.t.Fatalf("dnstest: record %q: %v", str, err)
		}
		if rr == nil {
			s.t.Fatalf("dnstest: record %q: empty", str)
		}
		out = append(out, rr)
	}
	return out
}

func keyOf(rr dns.RR) key {
	return key{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
}

func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }
