package dnstest

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxChase bounds CNAME chains so a loop in test data cannot hang a query.
const maxChase = 8

func (s *Server) handle(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	k := key{strings.ToLower(q.Name), q.Qtype}
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)

	s.mu.Lock()
	s.total++
	s.queries[k]++
	if overTCP {
		s.tcpQs[k]++
	}
	if s.drop[k.name] {
		s.mu.Unlock()
		return
	}
	m.SetReply(r)
	m.Authoritative = true
	rcode := s.rcode[k]
	if rcode == 0 {
		rcode = s.rcode[key{k.name, 0}]
	}
	switch {
	case rcode != 0:
		m.Rcode = rcode
	case s.truncate && !overTCP:
		m.Truncated = true
	default:
		s.answer(m, k)
	}
	s.mu.Unlock()

	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if !overTCP {
		// A reply larger than the client's buffer is cut and flagged TC
		// (RFC 1035 §4.2.1; 512 bytes without EDNS0, RFC 6891 §6.2.5).
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// answer fills m for k the way an authoritative server would: the records,
// or a CNAME chain to them, else NODATA or NXDOMAIN with an SOA in the
// authority section for negative caching (RFC 2308 §3). Caller holds s.mu.
func (s *Server) answer(m *dns.Msg, k key) {
	name := k.name
	for range maxChase {
		if rrs := s.rrs[key{name, k.qtype}]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			return
		}
		cn := s.rrs[key{name, dns.TypeCNAME}]
		if k.qtype == dns.TypeCNAME || len(cn) == 0 {
			break
		}
		m.Answer = append(m.Answer, cn[0])
		if s.noChase {
			return
		}
		name = strings.ToLower(cn[0].(*dns.CNAME).Target)
	}
	if !s.known(name) {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, s.soa(name))
}

// known reports whether name exists: it owns records or is an empty
// non-terminal above names that do (RFC 8020: those are NODATA, not
// NXDOMAIN).
func (s *Server) known(name string) bool {
	for k := range s.rrs {
		if k.name == name || strings.HasSuffix(k.name, "."+name) {
			return true
		}
	}
	return false
}

// soa is the SOA of the closest enclosing zone in the data, or one
// synthesised for the name's top-level label.
func (s *Server) soa(name string) dns.RR {
	for n, end := name, false; !end; {
		if rrs := s.rrs[key{n, dns.TypeSOA}]; len(rrs) > 0 {
			return rrs[0]
		}
		var off int
		off, end = dns.NextLabel(n, 0)
		n = n[off:]
	}
	labels := dns.SplitDomainName(name)
	zone := "."
	if len(labels) > 0 {
		zone = labels[len(labels)-1] + "."
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: NegativeTTL},
		Ns:      "ns.dnstest.invalid.",
		Mbox:    "hostmaster.dnstest.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  NegativeTTL,
	}
}
