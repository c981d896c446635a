package mx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxCNAME bounds a CNAME chain; longer ones are loops or misconfig.
	maxCNAME = 8
	// maxTTL caps how long a positive answer is trusted.
	maxTTL = 24 * time.Hour
	// maxNegTTL bounds negative caching (RFC 2308 §5 suggests 1-3 hours;
	// a freshly registered domain should not wait that long).
	maxNegTTL = 5 * time.Minute
)

// answer is the outcome of one name/type lookup after following CNAMEs.
// It is shared through the cache and never modified.
type answer struct {
	canonical string   // FQDN owning the records, after CNAMEs
	rrs       []dns.RR // records of the type asked; none on NODATA/NXDOMAIN
	nxdomain  bool
}

// resolve queries name/qtype, following CNAMEs, and returns the answer and
// how long it may be cached (0: not at all). Failures are transient
// *Errors; NXDOMAIN and NODATA are answers, not errors.
func (d *DNS) resolve(ctx context.Context, name string, qtype uint16) (answer, time.Duration, error) {
	ttl := maxTTL
	cur, hops := name, 0
	for {
		r, err := d.exchange(ctx, cur, qtype)
		if err != nil {
			return answer{}, 0, err
		}
		asked := cur
		// RFC 1034 §3.6.2: a resolver returns the CNAME chain it followed
		// ahead of the records of the canonical name.
		for next := cnameOf(r, cur, qtype); next != nil; next = cnameOf(r, cur, qtype) {
			if hops++; hops > maxCNAME {
				return answer{}, 0, &Error{Domain: trimDot(name), Enhanced: "4.4.3",
					Msg: fmt.Sprintf("CNAME chain longer than %d (loop?)", maxCNAME)}
			}
			ttl = min(ttl, seconds(next.Hdr.Ttl))
			cur = strings.ToLower(next.Target)
		}
		a := answer{canonical: cur}
		for _, rr := range r.Answer {
			if h := rr.Header(); h.Rrtype == qtype && strings.EqualFold(h.Name, cur) {
				a.rrs = append(a.rrs, rr)
				ttl = min(ttl, seconds(h.Ttl))
			}
		}
		switch {
		case len(a.rrs) > 0:
			return a, ttl, nil
		case r.Rcode == dns.RcodeNameError:
			a.nxdomain = true
			return a, min(ttl, negativeTTL(r)), nil
		case cur != asked && !hasSOAFor(r, cur):
			// The server gave the CNAME but did not follow it (an
			// authoritative server with the target outside its zones):
			// ask for the target ourselves.
			continue
		default:
			return a, min(ttl, negativeTTL(r)), nil
		}
	}
}

func cnameOf(r *dns.Msg, name string, qtype uint16) *dns.CNAME {
	if qtype == dns.TypeCNAME {
		return nil
	}
	for _, rr := range r.Answer {
		if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
			return c
		}
	}
	return nil
}

// negativeTTL is how long a NODATA/NXDOMAIN reply may be cached: the
// smaller of the SOA's TTL and MINIMUM (RFC 2308 §5), bounded. Without an
// SOA it is not cached at all, as RFC 2308 §5 asks.
func negativeTTL(r *dns.Msg) time.Duration {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(seconds(soa.Hdr.Ttl), seconds(soa.Minttl), maxNegTTL)
		}
	}
	return 0
}

func hasSOAFor(r *dns.Msg, name string) bool {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
			return true
		}
	}
	return false
}

// exchange sends one question to the configured servers in turn. A
// timeout or network error is retried (d.attempts rounds); a server that
// answers SERVFAIL or REFUSED is not asked again, the next one is.
func (d *DNS) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(ednsSize, false)
	var last error
	gaveUp := make([]bool, len(d.servers))
	for range d.attempts {
		for i, srv := range d.servers {
			if gaveUp[i] {
				continue
			}
			m.Id = dns.Id()
			r, err := d.exchangeOne(ctx, m, srv)
			if err != nil {
				last = &Error{Domain: trimDot(name), Enhanced: "4.4.3", Msg: "DNS query failed",
					Err: fmt.Errorf("%s %s @%s: %w", trimDot(name), dns.TypeToString[qtype], srv, err)}
				if ctx.Err() != nil {
					return nil, last
				}
				continue
			}
			if r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError {
				return r, nil
			}
			gaveUp[i] = true
			last = &Error{Domain: trimDot(name), Enhanced: "4.4.3",
				Msg: fmt.Sprintf("DNS server %s answered %s for %s %s", srv,
					dns.RcodeToString[r.Rcode], trimDot(name), dns.TypeToString[qtype])}
		}
	}
	return nil, last
}

// exchangeOne asks one server over UDP, then over TCP if the reply was
// truncated (RFC 1035 §4.2.1, RFC 7766 §5).
func (d *DNS) exchangeOne(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	r, _, err := d.udp.ExchangeContext(ctx, m, srv)
	if r != nil && r.Truncated {
		// A cut-off reply may not even unpack; either way TCP has it all.
		r, _, err = d.tcp.ExchangeContext(ctx, m, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(r.Question) > 0 && (r.Question[0].Qtype != m.Question[0].Qtype ||
		!strings.EqualFold(r.Question[0].Name, m.Question[0].Name)) {
		return nil, errors.New("reply does not match the question")
	}
	return r, nil
}

func seconds(s uint32) time.Duration { return time.Duration(s) * time.Second }

func trimDot(s string) string { return strings.TrimSuffix(s, ".") }
