package mx

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSConfig configures a DNS resolver.
type DNSConfig struct {
	// Server is the recursive resolver, "ip:port" (a bare IP means port
	// 53). Empty reads the nameservers of /etc/resolv.conf.
	Server string
	// Timeout bounds one query exchange (default 5s).
	Timeout time.Duration
	// CacheSize bounds the cached answers, one per name and type
	// (default 10000).
	CacheSize int
}

const (
	defaultTimeout   = 5 * time.Second
	defaultCacheSize = 10000
	// ednsSize is the UDP buffer advertised (RFC 6891), the size DNS Flag
	// Day 2020 settled on to avoid fragmentation.
	ednsSize = 1232
)

// resolvConf is read when DNSConfig.Server is empty; tests point it at a
// file of their own.
var resolvConf = "/etc/resolv.conf"

// shuffle orders MX hosts of equal preference (RFC 5321 §5.1: "the sender
// MUST randomize them to spread the load"). Tests replace it to fix the
// order.
var shuffle = rand.Shuffle

// DNS resolves mail exchangers over DNS with miekg/dns, caching answers for
// their TTL. It is safe for concurrent use.
type DNS struct {
	servers  []string
	attempts int // tries per server on a timeout or network error
	udp, tcp *dns.Client
	cache    *cache
	now      func() time.Time // clock seam for cache expiry
}

var _ Resolver = (*DNS)(nil)

// NewDNS returns a resolver for cfg.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("mx: negative DNS timeout %v", cfg.Timeout)
	}
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf("mx: negative DNS cache size %d", cfg.CacheSize)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = defaultCacheSize
	}
	d := &DNS{
		attempts: 2,
		udp:      &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: ednsSize},
		tcp:      &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		cache:    newCache(cfg.CacheSize),
		now:      time.Now,
	}
	if cfg.Server != "" {
		addr, err := serverAddr(cfg.Server, "53")
		if err != nil {
			return nil, err
		}
		d.servers = []string{addr}
		return d, nil
	}
	rc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("mx: no DNS resolver configured and %s unreadable: %w", resolvConf, err)
	}
	for _, s := range rc.Servers {
		addr, err := serverAddr(s, rc.Port)
		if err != nil {
			return nil, fmt.Errorf("mx: %s: %w", resolvConf, err)
		}
		d.servers = append(d.servers, addr)
	}
	if len(d.servers) == 0 {
		return nil, fmt.Errorf("mx: %s lists no nameserver", resolvConf)
	}
	if rc.Attempts > 0 {
		d.attempts = rc.Attempts
	}
	return d, nil
}

// serverAddr checks a resolver address: an IP with an optional port.
func serverAddr(s, defPort string) (string, error) {
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
		return net.JoinHostPort(ip.String(), defPort), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("mx: DNS server %q: want ip:port: %w", s, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("mx: DNS server %q: %q is not an IP address", s, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("mx: DNS server %q: bad port %q", s, port)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// LookupMX implements Resolver following RFC 5321 §5.1.
func (d *DNS) LookupMX(ctx context.Context, domain string) ([]string, error) {
	if ip := addressLiteral(domain); ip != nil {
		// An address literal names the host itself; there is nothing to
		// look up (RFC 5321 §4.1.3).
		return []string{ip.String()}, nil
	}
	name, err := normalize(domain)
	if err != nil {
		return nil, &Error{Domain: domain, Permanent: true, Enhanced: "5.1.2", Msg: "invalid domain name", Err: err}
	}
	domain = strings.TrimSuffix(name, ".")
	a, err := d.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, withDomain(err, domain)
	}
	if a.nxdomain {
		return nil, &Error{Domain: domain, Permanent: true, Enhanced: "5.1.2", Msg: "no such domain (NXDOMAIN)"}
	}
	if len(a.rrs) == 0 {
		return d.implicitMX(ctx, domain, strings.TrimSuffix(a.canonical, "."))
	}
	return order(domain, a.rrs)
}

// implicitMX applies RFC 5321 §5.1: with no MX record, the domain (its
// canonical name after CNAMEs) is the mail host if it has an address.
func (d *DNS) implicitMX(ctx context.Context, domain, host string) ([]string, error) {
	if _, err := d.LookupIP(ctx, host); err != nil {
		e := withDomain(err, domain)
		if e.Permanent {
			return nil, &Error{Domain: domain, Permanent: true, Enhanced: "5.1.2",
				Msg: "domain has no mail server (no MX, A or AAAA record)"}
		}
		return nil, e
	}
	return []string{host}, nil
}

// order sorts MX records by preference, shuffles equal preferences and
// recognises a null MX (RFC 7505).
func order(domain string, rrs []dns.RR) ([]string, error) {
	type pref struct {
		host string
		pref uint16
	}
	var hosts []pref
	for _, rr := range rrs {
		m := rr.(*dns.MX)
		if m.Mx == "." {
			// RFC 7505 §3: a null MX must stand alone; next to real MX
			// records it names no host and is skipped.
			continue
		}
		hosts = append(hosts, pref{strings.ToLower(strings.TrimSuffix(m.Mx, ".")), m.Preference})
	}
	if len(hosts) == 0 {
		return nil, &Error{Domain: domain, Permanent: true, Enhanced: "5.1.10",
			Msg: "domain accepts no mail (null MX, RFC 7505)"}
	}
	shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	slices.SortStableFunc(hosts, func(a, b pref) int { return int(a.pref) - int(b.pref) })
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if !slices.Contains(out, h.host) { // keep a host at its best preference
			out = append(out, h.host)
		}
	}
	return out, nil
}

// LookupIP implements Resolver: A then AAAA records, IPv4 first.
func (d *DNS) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	if ip := addressLiteral(host); ip != nil {
		return []net.IP{ip}, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	name, err := normalize(host)
	if err != nil {
		return nil, &Error{Domain: host, Permanent: true, Enhanced: "5.1.2", Msg: "invalid host name", Err: err}
	}
	host = strings.TrimSuffix(name, ".")
	type result struct {
		a   answer
		err error
	}
	// Ask for both families at once unless the cache has the AAAA answer.
	v6 := make(chan result, 1)
	if a, ok := d.cached(name, dns.TypeAAAA); ok {
		v6 <- result{a, nil}
	} else {
		go func() {
			a, err := d.lookup(ctx, name, dns.TypeAAAA)
			v6 <- result{a, err}
		}()
	}
	a4, err4 := d.lookup(ctx, name, dns.TypeA)
	r6 := <-v6
	a6, err6 := r6.a, r6.err

	var ips []net.IP
	for _, rr := range a4.rrs {
		ips = append(ips, rr.(*dns.A).A)
	}
	for _, rr := range a6.rrs {
		ips = append(ips, rr.(*dns.AAAA).AAAA)
	}
	switch {
	case len(ips) > 0:
		// One family answering is enough; a failure of the other only
		// narrows the choice.
		return ips, nil
	case err4 != nil:
		return nil, withDomain(err4, host)
	case err6 != nil:
		return nil, withDomain(err6, host)
	case a4.nxdomain && a6.nxdomain:
		return nil, &Error{Domain: host, Permanent: true, Enhanced: "5.1.2", Msg: "no such host (NXDOMAIN)"}
	default:
		return nil, &Error{Domain: host, Permanent: true, Enhanced: "5.1.2", Msg: "host has no A or AAAA record"}
	}
}

// withDomain returns err as an *Error naming domain (the name the caller
// asked about rather than a CNAME target).
func withDomain(err error, domain string) *Error {
	e := *AsError(domain, err)
	e.Domain = domain
	return &e
}
