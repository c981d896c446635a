package mx

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
)

// clock is a settable time source for cache expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newDNS(t testing.TB, srv *dnstest.Server, cfg DNSConfig) (*DNS, *clock) {
	t.Helper()
	cfg.Server = srv.Addr
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	d, err := NewDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	d.now = c.now
	return d, c
}

// wantErr checks err is a classified *Error with the given verdict.
func wantErr(t *testing.T, err error, permanent bool, enhanced string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *mx.Error", err, err)
	}
	if e.Permanent != permanent || e.Enhanced != enhanced {
		t.Fatalf("err = %v: permanent %v enhanced %s, want %v %s", e, e.Permanent, e.Enhanced, permanent, enhanced)
	}
	return e
}

func TestPreferenceOrderAndShuffle(t *testing.T) {
	srv := dnstest.Start(t,
		"example.test. 300 IN MX 20 B.example.test.",
		"example.test. 300 IN MX 10 a.example.test.",
		"example.test. 300 IN MX 10 c.example.test.",
		"example.test. 300 IN MX 30 d.example.test.",
		"example.test. 300 IN MX 40 a.example.test.", // duplicate host: kept at its best preference
	)
	d, _ := newDNS(t, srv, DNSConfig{})
	first := map[string]int{}
	for range 400 {
		hosts, err := d.LookupMX(context.Background(), "Example.TEST.")
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 4 || !slices.Contains(hosts[:2], "a.example.test") || !slices.Contains(hosts[:2], "c.example.test") ||
			hosts[2] != "b.example.test" || hosts[3] != "d.example.test" {
			t.Fatalf("hosts = %q", hosts)
		}
		first[hosts[0]]++
	}
	// Equal preferences are shuffled (RFC 5321 §5.1): each of the two
	// comes first a fair share of the time (p of < 120 of 400 is ~1e-16).
	if first["a.example.test"] < 120 || first["c.example.test"] < 120 {
		t.Fatalf("first-host counts %v: equal preferences not shuffled", first)
	}
	if n := srv.Queries("example.test", dns.TypeMX); n != 1 {
		t.Fatalf("MX queries = %d, want 1 (cached)", n)
	}
}

func TestShuffleSeam(t *testing.T) {
	old := shuffle
	t.Cleanup(func() { shuffle = old })
	shuffle = func(n int, swap func(i, j int)) {
		for i := 0; i < n/2; i++ {
			swap(i, n-1-i)
		}
	}
	srv := dnstest.Start(t,
		"example.test. 300 IN MX 10 a.example.test.",
		"example.test. 300 IN MX 10 b.example.test.",
		"example.test. 300 IN MX 10 c.example.test.",
	)
	d, _ := newDNS(t, srv, DNSConfig{})
	hosts, err := d.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(hosts, " ") != "c.example.test b.example.test a.example.test" {
		t.Fatalf("hosts = %q, want the seam's reversed order", hosts)
	}
}

func TestImplicitMX(t *testing.T) {
	srv := dnstest.Start(t,
		"v4.test. 300 IN A 127.0.0.1",
		"v6.test. 300 IN AAAA ::1",
		"txtonly.test. 300 IN TXT \"v=spf1 -all\"",
		"alias.test. 300 IN CNAME v4.test.",
	)
	d, _ := newDNS(t, srv, DNSConfig{})
	ctx := context.Background()
	for domain, want := range map[string]string{"v4.test": "v4.test", "v6.test": "v6.test", "alias.test": "v4.test"} {
		hosts, err := d.LookupMX(ctx, domain)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if len(hosts) != 1 || hosts[0] != want {
			t.Fatalf("%s: hosts = %q, want [%s]", domain, hosts, want)
		}
	}
	_, err := d.LookupMX(ctx, "txtonly.test")
	e := wantErr(t, err, true, "5.1.2")
	if !strings.Contains(e.Msg, "no mail server") || e.Domain != "txtonly.test" {
		t.Fatalf("err = %v", e)
	}
	// The implicit MX's addresses are cached for the dial that follows.
	if _, err := d.LookupIP(ctx, "v4.test"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Queries("v4.test", dns.TypeA); n != 1 {
		t.Fatalf("A queries for v4.test = %d, want 1", n)
	}
}

func TestNullMX(t *testing.T) {
	srv := dnstest.Start(t,
		"null.test. 300 IN MX 0 .",
		"null.test. 300 IN A 127.0.0.1", // an address does not override a null MX
		"mixed.test. 300 IN MX 0 .",
		"mixed.test. 300 IN MX 10 mx.mixed.test.",
	)
	d, _ := newDNS(t, srv, DNSConfig{})
	_, err := d.LookupMX(context.Background(), "null.test")
	wantErr(t, err, true, "5.1.10")
	hosts, err := d.LookupMX(context.Background(), "mixed.test")
	if err != nil || len(hosts) != 1 || hosts[0] != "mx.mixed.test" {
		t.Fatalf("mixed null MX: %q, %v", hosts, err)
	}
}

func TestNXDOMAINCachedWithBound(t *testing.T) {
	srv := dnstest.Start(t,
		"zone.test. 3600 IN SOA ns.zone.test. host.zone.test. 1 3600 600 86400 3600",
		"mx.zone.test. 300 IN A 127.0.0.1",
	)
	d, clk := newDNS(t, srv, DNSConfig{})
	ctx := context.Background()
	_, err := d.LookupMX(ctx, "gone.zone.test")
	e := wantErr(t, err, true, "5.1.2")
	if e.Domain != "gone.zone.test" {
		t.Fatalf("Domain = %q", e.Domain)
	}
	clk.add(4 * time.Minute)
	_, err = d.LookupMX(ctx, "gone.zone.test")
	wantErr(t, err, true, "5.1.2")
	if n := srv.Queries("gone.zone.test", dns.TypeMX); n != 1 {
		t.Fatalf("queries = %d, want 1 (negative answer cached)", n)
	}
	// The SOA allows an hour; the cache bound is five minutes.
	clk.add(61 * time.Second)
	srv.Add("gone.zone.test. 300 IN MX 10 mx.zone.test.")
	hosts, err := d.LookupMX(ctx, "gone.zone.test")
	if err != nil || len(hosts) != 1 || srv.Queries("gone.zone.test", dns.TypeMX) != 2 {
		t.Fatalf("after bound: %q, %v, queries %d", hosts, err, srv.Queries("gone.zone.test", dns.TypeMX))
	}
}

func TestTransientFailuresNotCached(t *testing.T) {
	srv := dnstest.Start(t, "sf.test. 300 IN MX 10 mx.sf.test.", "ref.test. 300 IN MX 10 mx.ref.test.")
	srv.ServFail("sf.test")
	srv.SetRcode("ref.test", dns.RcodeRefused)
	d, _ := newDNS(t, srv, DNSConfig{})
	ctx := context.Background()
	for range 2 {
		_, err := d.LookupMX(ctx, "sf.test")
		if e := wantErr(t, err, false, "4.4.3"); !strings.Contains(e.Error(), "SERVFAIL") {
			t.Fatalf("err = %v", e)
		}
		_, err = d.LookupMX(ctx, "ref.test")
		wantErr(t, err, false, "4.4.3")
	}
	// One query per lookup: not cached, and an answered SERVFAIL is not
	// retried against the same server.
	if a, b := srv.Queries("sf.test", dns.TypeMX), srv.Queries("ref.test", dns.TypeMX); a != 2 || b != 2 {
		t.Fatalf("queries sf=%d ref=%d, want 2 each", a, b)
	}
	srv.SetRcode("sf.test", dns.RcodeSuccess)
	if hosts, err := d.LookupMX(ctx, "sf.test"); err != nil || hosts[0] != "mx.sf.test" {
		t.Fatalf("after recovery: %q, %v", hosts, err)
	}
}

func TestTimeoutIsTransientAndRetried(t *testing.T) {
	srv := dnstest.Start(t, "slow.test. 300 IN MX 10 mx.slow.test.")
	srv.SetDrop("slow.test", true)
	d, _ := newDNS(t, srv, DNSConfig{Timeout: 50 * time.Millisecond})
	_, err := d.LookupMX(context.Background(), "slow.test")
	wantErr(t, err, false, "4.4.3")
	if n := srv.Queries("slow.test", dns.TypeMX); n != 2 {
		t.Fatalf("queries = %d, want 2 (one retry after a timeout)", n)
	}
	// A network error (nothing listening) is transient too.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	d2, err := NewDNS(DNSConfig{Server: dead, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d2.LookupIP(context.Background(), "host.test")
	wantErr(t, err, false, "4.4.3")
}

func TestCancelledContext(t *testing.T) {
	srv := dnstest.Start(t, "slow.test. 300 IN MX 10 mx.slow.test.")
	srv.SetDrop("slow.test", true)
	d, _ := newDNS(t, srv, DNSConfig{Timeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := d.LookupMX(ctx, "slow.test")
	if e := wantErr(t, err, false, "4.4.3"); !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded inside", e)
	}
}

func TestTCPFallback(t *testing.T) {
	srv := dnstest.Start(t,
		"big.test. 300 IN MX 10 mx1.big.test.",
		"big.test. 300 IN MX 20 mx2.big.test.",
		"mx1.big.test. 300 IN A 127.0.0.1",
	)
	srv.SetTruncate(true)
	d, _ := newDNS(t, srv, DNSConfig{})
	hosts, err := d.LookupMX(context.Background(), "big.test")
	if err != nil || strings.Join(hosts, ",") != "mx1.big.test,mx2.big.test" {
		t.Fatalf("hosts %q, %v", hosts, err)
	}
	if u, tc := srv.Queries("big.test", dns.TypeMX), srv.TCPQueries("big.test", dns.TypeMX); u != 2 || tc != 1 {
		t.Fatalf("queries total=%d tcp=%d, want 2 and 1 (UDP truncated, then TCP)", u, tc)
	}
	ips, err := d.LookupIP(context.Background(), "mx1.big.test")
	if err != nil || len(ips) != 1 || srv.TCPQueries("mx1.big.test", dns.TypeA) != 1 {
		t.Fatalf("LookupIP over TCP: %v, %v", ips, err)
	}
}

func TestTTLExpiry(t *testing.T) {
	srv := dnstest.Start(t,
		"ttl.test. 300 IN MX 10 old.ttl.test.",
		"www.ttl.test. 60 IN CNAME ttl.test.",
	)
	d, clk := newDNS(t, srv, DNSConfig{})
	ctx := context.Background()
	get := func(domain string) string {
		t.Helper()
		hosts, err := d.LookupMX(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(hosts, ",")
	}
	get("ttl.test")
	get("www.ttl.test")
	srv.Replace("ttl.test. 300 IN MX 10 new.ttl.test.")
	clk.add(59 * time.Second)
	if h := get("www.ttl.test"); h != "old.ttl.test" {
		t.Fatalf("www before CNAME TTL: %s", h)
	}
	// The chain is cached for its smallest TTL, the CNAME's 60 s.
	clk.add(2 * time.Second)
	if h := get("www.ttl.test"); h != "new.ttl.test" {
		t.Fatalf("www after CNAME TTL: %s", h)
	}
	if h := get("ttl.test"); h != "old.ttl.test" {
		t.Fatalf("ttl.test before its TTL: %s", h)
	}
	if n := srv.Queries("ttl.test", dns.TypeMX); n != 1 {
		t.Fatalf("ttl.test queries = %d, want 1", n)
	}
	clk.add(240 * time.Second) // 301 s after the first lookup
	if h := get("ttl.test"); h != "new.ttl.test" {
		t.Fatalf("ttl.test after its TTL: %s", h)
	}
	if n := srv.Queries("ttl.test", dns.TypeMX); n != 2 {
		t.Fatalf("ttl.test queries = %d, want 2", n)
	}
}

func TestCNAMEFollowedByClient(t *testing.T) {
	srv := dnstest.Start(t,
		"alias.test. 300 IN CNAME real.test.",
		"real.test. 300 IN MX 10 mx.real.test.",
		"loop1.test. 300 IN CNAME loop2.test.",
		"loop2.test. 300 IN CNAME loop1.test.",
	)
	srv.SetChaseCNAME(false) // the server returns the CNAME alone
	d, _ := newDNS(t, srv, DNSConfig{})
	hosts, err := d.LookupMX(context.Background(), "alias.test")
	if err != nil || len(hosts) != 1 || hosts[0] != "mx.real.test" {
		t.Fatalf("hosts %q, %v", hosts, err)
	}
	if n := srv.Queries("real.test", dns.TypeMX); n != 1 {
		t.Fatalf("target queries = %d, want 1", n)
	}
	_, err = d.LookupMX(context.Background(), "loop1.test")
	if e := wantErr(t, err, false, "4.4.3"); !strings.Contains(e.Msg, "CNAME") {
		t.Fatalf("err = %v", e)
	}
}

func TestLookupIP(t *testing.T) {
	srv := dnstest.Start(t,
		"mx.test. 300 IN AAAA ::1",
		"mx.test. 300 IN A 127.0.0.2",
		"mx.test. 300 IN A 127.0.0.3",
		"half.test. 300 IN AAAA ::1",
		"noaddr.test. 300 IN MX 10 mx.test.",
	)
	d, _ := newDNS(t, srv, DNSConfig{})
	ctx := context.Background()
	for range 2 {
		ips, err := d.LookupIP(ctx, "MX.test.")
		if err != nil {
			t.Fatal(err)
		}
		if len(ips) != 3 || !ips[0].Equal(net.ParseIP("127.0.0.2")) || !ips[1].Equal(net.ParseIP("127.0.0.3")) || !ips[2].Equal(net.IPv6loopback) {
			t.Fatalf("ips = %v, want IPv4 first then IPv6", ips)
		}
	}
	if a, aaaa := srv.Queries("mx.test", dns.TypeA), srv.Queries("mx.test", dns.TypeAAAA); a != 1 || aaaa != 1 {
		t.Fatalf("queries A=%d AAAA=%d, want 1 each (cached)", a, aaaa)
	}
	_, err := d.LookupIP(ctx, "nohost.test")
	wantErr(t, err, true, "5.1.2")
	_, err = d.LookupIP(ctx, "noaddr.test")
	wantErr(t, err, true, "5.1.2")
	// One family failing does not hide the other...
	srv.Add("half.test. 300 IN A 127.0.0.4")
	srv.SetRcodeType("half.test", dns.TypeAAAA, dns.RcodeServerFailure)
	if ips, err := d.LookupIP(ctx, "half.test"); err != nil || len(ips) != 1 || ips[0].String() != "127.0.0.4" {
		t.Fatalf("half.test: %v, %v", ips, err)
	}
	// ...but a failure next to NODATA is a failure, not "no address".
	srv.Add("v6fail.test. 300 IN TXT \"x\"")
	srv.SetRcodeType("v6fail.test", dns.TypeAAAA, dns.RcodeServerFailure)
	_, err = d.LookupIP(ctx, "v6fail.test")
	wantErr(t, err, false, "4.4.3")
	srv.ServFail("other.test")
	_, err = d.LookupIP(ctx, "other.test")
	wantErr(t, err, false, "4.4.3")
	// Literals need no query.
	before := srv.TotalQueries()
	if ips, _ := d.LookupIP(ctx, "127.0.0.9"); len(ips) != 1 || ips[0].String() != "127.0.0.9" {
		t.Fatalf("IP literal: %v", ips)
	}
	if hosts, _ := d.LookupMX(ctx, "[127.0.0.8]"); len(hosts) != 1 || hosts[0] != "127.0.0.8" {
		t.Fatalf("address literal: %v", hosts)
	}
	if hosts, _ := d.LookupMX(ctx, "[IPv6:::1]"); len(hosts) != 1 || hosts[0] != "::1" {
		t.Fatalf("IPv6 address literal: %v", hosts)
	}
	if srv.TotalQueries() != before {
		t.Fatal("literals caused DNS queries")
	}
}

func TestCacheBoundedAndConcurrent(t *testing.T) {
	srv := dnstest.Start(t,
		"a.test. 300 IN MX 10 mx.a.test.",
		"b.test. 300 IN MX 10 mx.b.test.",
		"c.test. 300 IN MX 10 mx.c.test.",
	)
	d, _ := newDNS(t, srv, DNSConfig{CacheSize: 2})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := d.LookupMX(ctx, "a.test"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.Queries("a.test", dns.TypeMX); n != 1 {
		t.Fatalf("50 concurrent lookups sent %d queries, want 1", n)
	}
	for _, dom := range []string{"b.test", "c.test", "a.test"} {
		if _, err := d.LookupMX(ctx, dom); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.cache.Len(); n != 2 {
		t.Fatalf("cache holds %d, want 2", n)
	}
	// a.test was evicted by c.test (least recently used), so asked again.
	if n := srv.Queries("a.test", dns.TypeMX); n != 2 {
		t.Fatalf("a.test queries = %d, want 2 after eviction", n)
	}
}

func TestBadInput(t *testing.T) {
	for _, cfg := range []DNSConfig{
		{Server: "dns.example.test:53"},
		{Server: "127.0.0.1:0"},
		{Server: "127.0.0.1:x"},
		{Server: "127.0.0.1", Timeout: -1},
		{Server: "127.0.0.1", CacheSize: -1},
	} {
		if _, err := NewDNS(cfg); err == nil {
			t.Errorf("NewDNS(%+v) accepted", cfg)
		}
	}
	d, err := NewDNS(DNSConfig{Server: "::1"})
	if err != nil || d.servers[0] != "[::1]:53" {
		t.Fatalf("bare IPv6: %v %v", d, err)
	}
	srv := dnstest.Start(t)
	d, _ = newDNS(t, srv, DNSConfig{})
	for _, dom := range []string{"", ".", "a..test", "exa mple.test", strings.Repeat("a", 64) + ".test", "[300.1.1.1]"} {
		_, err := d.LookupMX(context.Background(), dom)
		wantErr(t, err, true, "5.1.2")
	}
	if srv.TotalQueries() != 0 {
		t.Fatalf("invalid names sent %d queries", srv.TotalQueries())
	}
}

func TestResolvConf(t *testing.T) {
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	dir := t.TempDir()
	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 127.0.0.53\nnameserver ::1\noptions attempts:3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDNS(DNSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.servers, " ") != "127.0.0.53:53 [::1]:53" || d.attempts != 3 {
		t.Fatalf("servers %q attempts %d", d.servers, d.attempts)
	}
	if err := os.WriteFile(resolvConf, []byte("# none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDNS(DNSConfig{}); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Fatalf("empty resolv.conf: %v", err)
	}
}

func TestInternationalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"bücher.test":   "xn--bcher-kva.test.",
		"MÜNCHEN.test":  "xn--mnchen-3ya.test.",
		"café。test":     "xn--caf-dma.test.",
		"例え.テスト":        "xn--r8jz45g.xn--zckzah.",
		"ascii.example": "ascii.example.",
	} {
		got, err := normalize(in)
		if err != nil || got != want {
			t.Errorf("normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	srv := dnstest.Start(t, "xn--bcher-kva.test. 300 IN MX 10 mx.xn--bcher-kva.test.")
	d, _ := newDNS(t, srv, DNSConfig{})
	if hosts, err := d.LookupMX(context.Background(), "bücher.test"); err != nil || hosts[0] != "mx.xn--bcher-kva.test" {
		t.Fatalf("IDN lookup: %q, %v", hosts, err)
	}
}

func BenchmarkLookupMXCached(b *testing.B) {
	srv := dnstest.Start(b,
		"example.test. 300 IN MX 10 a.example.test.",
		"example.test. 300 IN MX 10 b.example.test.",
		"example.test. 300 IN MX 20 c.example.test.",
	)
	d, _ := newDNS(b, srv, DNSConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.LookupMX(ctx, "example.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkLookupIPCached(b *testing.B) {
	srv := dnstest.Start(b, "mx.example.test. 300 IN A 127.0.0.1", "mx.example.test. 300 IN AAAA ::1")
	d, _ := newDNS(b, srv, DNSConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.LookupIP(ctx, "mx.example.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
