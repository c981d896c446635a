package engine_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// gmailDomainText is Gmail's 4.7.28 about the DKIM domain
// (../shared/docs/provider-responses.md).
func gmailDomainText(domain string) string {
	return "Gmail has detected an unusual rate of unsolicited email originating from your DKIM domain " + domain +
		". To protect our users from spam, email sent from your domain has been temporarily rate limited."
}

// launchFrom launches an n-recipient campaign id to domain, From news@from.
func launchFrom(t *testing.T, prefix, id string, n int, domain, from string) {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, domain)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Write(t, path, strings.Replace(string(b), "news@sluice.test", "news@"+from, 1))
	if _, err := launch.Launch(context.Background(), redistest.Client(t), keyspace.Space(prefix), path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
}

// Issue #13: a sending-domain deferral slows that domain's mail on every
// source, and not other domains' mail on the same sources. Two campaigns
// From two domains leave from one pool of two sources toward one key; the
// receiver answers Gmail's DKIM-domain 4.7.28 to the first domain's mail
// beyond 10 msg/s and takes the second's freely. The (domain, key) bucket
// of the first is cut; neither source's bucket is (the second domain's
// pace), and the second campaign is never refused.
func TestSendingDomainDeferralsSlowOnlyThatDomain(t *testing.T) {
	const na, nb, limit = 100, 300, 10.0
	lim := rate.NewLimiter(rate.Limit(limit), 1)
	var mu sync.Mutex
	tried := map[string]int{}
	refused := 0
	srv := smtptest.Start(t, smtptest.Options{Quiet: true, Discard: true, Rcpt: func(to string) error {
		dom := to[strings.LastIndexByte(to, '@')+1:]
		mu.Lock()
		defer mu.Unlock()
		tried[dom]++
		if dom == "a.test" && !lim.Allow() {
			refused++
			return smtptest.Reply(421, "4.7.28", gmailDomainText("a-sender.test"))
		}
		return nil
	}})
	prefix := redistest.Prefix(t)
	launchFrom(t, prefix, "doma", na, "a.test", "a-sender.test")
	launchFrom(t, prefix, "domb", nb, "b.test", "b-sender.test")
	cfg := enginetest.Config(prefix, srv.Addr)
	const start = 60.0
	cfg.Throttle.Default = config.Limits{StartRate: start, MinRate: 1, MaxRate: 1000, Burst: 6, MaxConnections: 8}
	egressConfig(t, cfg, twoSources)
	enginetest.Start(t, cfg)
	rdb := redistest.Client(t)
	st := store.New(rdb, keyspace.Space(prefix))
	sb := enginetest.WaitFinished(t, st, "domb", 60*time.Second)
	sa := enginetest.WaitFinished(t, st, "doma", 90*time.Second)
	if sa.Delivered != na || sb.Delivered != nb {
		t.Fatalf("delivered %d of %d and %d of %d", sa.Delivered, na, sb.Delivered, nb)
	}
	mu.Lock()
	ta, tb, ref := tried["a.test"], tried["b.test"], refused
	mu.Unlock()
	t.Logf("a-sender.test: %d attempts, %d refused (%.0f%%); b-sender.test: %d attempts", ta, ref, 100*float64(ref)/float64(ta), tb)
	if tb != nb {
		t.Errorf("b-sender.test's mail took %d attempts for %d recipients", tb, nb)
	}
	buckets, err := throttle.Inspect(context.Background(), rdb, keyspace.Space(prefix))
	if err != nil {
		t.Fatal(err)
	}
	var sources, domains int
	for _, b := range buckets {
		t.Logf("bucket %s: rate %.1f, state %s", b.Provider, b.Rate, b.State)
		switch d, isDom := throttle.DomainOf(b.Provider); {
		case isDom && d == "a-sender.test":
			domains++
			if b.Rate >= start {
				t.Errorf("%s at %.1f/s: not slowed", b.Provider, b.Rate)
			}
		case isDom:
			t.Errorf("bucket %s: only a-sender.test got a domain's deferral", b.Provider)
		case b.Source == "ip2" || b.Source == "ip3":
			sources++
			if b.Rate < start {
				t.Errorf("source bucket %s cut to %.1f/s by another domain's deferrals", b.Provider, b.Rate)
			}
		}
	}
	if sources != 2 || domains != 1 {
		t.Errorf("%d source buckets and %d domain buckets, want 2 and 1", sources, domains)
	}
	// Paced by its own bucket, the slowed domain's mail is mostly
	// accepted (unpaced, 60/s against 10/s would be refused 5 times in 6).
	if float64(ref) > 0.5*float64(ta) {
		t.Errorf("a-sender.test refused %d of %d attempts: its bucket does not pace it", ref, ta)
	}
}
