package throttle

import (
	"testing"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
)

func TestBucketNames(t *testing.T) {
	for _, c := range []struct{ key, src, name string }{
		{"google", "", "google"}, {"google", "ip2", "google@ip2"}, {"mx:a.test,b.test", "ip-3", "mx:a.test,b.test@ip-3"},
		{"route:127.0.0.1:2525", "x", "route:127.0.0.1:2525@x"},
	} {
		if got := Bucket(c.key, c.src); got != c.name {
			t.Errorf("Bucket(%q, %q) = %q, want %q", c.key, c.src, got, c.name)
		}
		if k, s := SplitBucket(c.name); k != c.key || s != c.src {
			t.Errorf("SplitBucket(%q) = %q, %q", c.name, k, s)
		}
	}
}

// An IP-scoped deferral (Gmail's 4.7.28 "from your IP address") slows
// only the bucket of the source that got it; a sending-domain one (its
// DKIM-domain variant) slows no source's bucket, only the (domain, key)
// bucket it is reported to (the engine reports it there too). A source's
// and a domain's bucket have their key's limits.
func TestDeferralScopeDecidesWhichSourcesSlow(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 10})
	e.cfg.Providers = map[string]config.Limits{"k": {MaxConnections: 4}}
	l := e.limiter("e1", 0)
	if got := l.Limits("k@a").MaxConnections; got != 4 {
		t.Fatalf("k@a has %d connections, want k's 4", got)
	}
	ipText := deliver.Classify(421, "4.7.28", "Gmail has detected an unusual rate of email originating from your IP address 127.0.0.2. To protect our users from spam, email sent from your IP address has been temporarily rate limited.")
	domText := deliver.Classify(421, "4.7.28", "Gmail has detected an unusual rate of unsolicited email originating from your DKIM domain sluice.test. To protect our users from spam, email sent from your domain has been temporarily rate limited.")
	for _, b := range []string{"k@a", "k@b", "k@c"} {
		p, _ := admit(t, l, b, "marketing")
		if p == nil {
			t.Fatalf("%s: no permit", b)
		}
		p.Done(ok)
	}
	p, _ := admit(t, l, "k@a", "marketing")
	p.Done(ipText)
	if a, b := e.status("k@a").Rate, e.status("k@b").Rate; a >= 100 || b != 100 {
		t.Fatalf("after an IP-scoped deferral on a: a %.1f/s, b %.1f/s; want only a cut", a, b)
	}
	e.clk.add(minWindow * 3)
	dom := DomainBucket("k", "News.Sluice.test")
	if d, ok := DomainOf(dom); dom != "k@d=news.sluice.test" || !ok || d != "news.sluice.test" || l.Limits(dom).MaxConnections != 4 {
		t.Fatalf("domain bucket %q (%q %v), %d connections", dom, d, ok, l.Limits(dom).MaxConnections)
	}
	if _, ok := DomainOf("k@b"); ok {
		t.Fatal("k@b taken for a domain's bucket")
	}
	for _, b := range []string{"k@b", dom} {
		p, _ = admit(t, l, b, "marketing")
		p.Done(domText)
	}
	for _, b := range []string{"k@b", "k@c"} {
		if r := e.status(b).Rate; r != 100 {
			t.Fatalf("after a sending-domain deferral: %s at %.1f/s, want its own 100", b, r)
		}
	}
	if r := e.status(dom).Rate; r >= 100 {
		t.Fatalf("after a sending-domain deferral: %s at %.1f/s, want cut", dom, r)
	}
}
