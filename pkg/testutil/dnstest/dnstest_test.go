package dnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: time.Second}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	s := Start(t,
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 127.0.0.1",
		"www.example.test. 300 IN CNAME mx1.example.test.",
		"a.b.deep.test. 300 IN A 127.0.0.2",
	)
	r := query(t, s, "udp", "example.test", dns.TypeMX)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "mx1.example.test." {
		t.Fatalf("MX answer: %v", r)
	}
	r = query(t, s, "tcp", "www.example.test", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[0].Header().Rrtype != dns.TypeCNAME || r.Answer[1].(*dns.A).A.String() != "127.0.0.1" {
		t.Fatalf("CNAME chase: %v", r)
	}
	// NODATA: known name, no record of the type; SOA for negative caching.
	r = query(t, s, "udp", "example.test", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != NegativeTTL {
		t.Fatalf("NODATA: %v", r)
	}
	// Empty non-terminal is NODATA too (RFC 8020).
	if r = query(t, s, "udp", "b.deep.test", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("empty non-terminal: %v", dns.RcodeToString[r.Rcode])
	}
	r = query(t, s, "udp", "nope.test", dns.TypeMX)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Name != "test." {
		t.Fatalf("NXDOMAIN: %v", r)
	}
	if got := s.Queries("EXAMPLE.test.", dns.TypeMX); got != 1 {
		t.Fatalf("MX queries = %d, want 1", got)
	}
	if got := s.TCPQueries("www.example.test", dns.TypeA); got != 1 {
		t.Fatalf("TCP queries = %d, want 1", got)
	}
	if got := s.TotalQueries(); got != 5 {
		t.Fatalf("total = %d, want 5", got)
	}
}

func TestScripting(t *testing.T) {
	s := Start(t, "example.test. 300 IN A 127.0.0.1")
	s.ServFail("example.test")
	if r := query(t, s, "udp", "example.test", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	s.SetRcode("example.test", dns.RcodeSuccess)
	s.SetTruncate(true)
	if r := query(t, s, "udp", "example.test", dns.TypeA); !r.Truncated || len(r.Answer) != 0 {
		t.Fatalf("want truncated UDP reply, got %v", r)
	}
	if r := query(t, s, "tcp", "example.test", dns.TypeA); r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("want full TCP reply, got %v", r)
	}
	s.SetTruncate(false)
	s.Replace("example.test. 300 IN A 127.0.0.9")
	if r := query(t, s, "udp", "example.test", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.9" {
		t.Fatalf("after Replace: %v", r)
	}
	s.SetDrop("example.test", true)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("example.test.", dns.TypeA), s.Addr); err == nil {
		t.Fatal("dropped query was answered")
	}
}

func TestTXTSplit(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	s := Start(t, TXT("sel._domainkey.sluice.test", 300, long))
	r := query(t, s, "tcp", "sel._domainkey.sluice.test", dns.TypeTXT)
	txt := r.Answer[0].(*dns.TXT).Txt
	if len(txt) != 3 || len(txt[0]) != 255 || strings.Join(txt, "") != long {
		t.Fatalf("TXT strings %d, joined equal %v", len(txt), strings.Join(txt, "") == long)
	}
}
