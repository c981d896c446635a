package lint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolver looks up TXT records with miekg/dns at one server, so lint can
// be pointed at any resolver (--dns) rather than only the system's.
type resolver struct {
	server  string
	timeout time.Duration
}

func newResolver(server string, timeout time.Duration) (*resolver, error) {
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("read /etc/resolv.conf (or give --dns ip:port): %w", err)
		}
		if len(cc.Servers) == 0 {
			return nil, errors.New("/etc/resolv.conf names no nameserver (give --dns ip:port)")
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("resolver %q: want ip:port: %w", server, err)
	}
	return &resolver{server: server, timeout: timeout}, nil
}

// lookupTXT returns name's TXT records, each one's strings joined (as
// net.LookupTXT does, and as SPF, DKIM and DMARC read them). Errors are
// *net.DNSError so go-msgauth tells "no record" (IsNotFound) from a
// temporary failure.
func (r *resolver) lookupTXT(ctx context.Context, name string) ([]string, error) {
	fqdn := dns.Fqdn(name)
	m := new(dns.Msg)
	m.SetQuestion(fqdn, dns.TypeTXT)
	m.SetEdns0(4096, false)
	c := &dns.Client{Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		c.Net = "tcp" // long DKIM keys do not always fit in UDP
		in, _, err = c.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: name, Server: r.server, IsTimeout: isTimeout(err), IsTemporary: true}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: r.server, IsNotFound: true}
	default:
		return nil, &net.DNSError{Err: dns.RcodeToString[in.Rcode], Name: name, Server: r.server, IsTemporary: in.Rcode == dns.RcodeServerFailure}
	}
	var out []string
	for _, rr := range in.Answer {
		// A recursive resolver answers a CNAME'd name with the chain: the
		// TXT records at its end are the name's.
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no TXT record", Name: name, Server: r.server, IsNotFound: true}
	}
	return out, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// notFound reports whether err says the name or record does not exist.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
