package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// gmailIPText is Gmail's 4.7.28 about the sending IP
// (../shared/docs/provider-responses.md, row 34), for IP.
func gmailIPText(ip string) string {
	return "Gmail has detected an unusual rate of email originating from your IP address " + ip +
		". To protect our users from spam, email sent from your IP address has been temporarily rate limited."
}

// ipThrottler is a receiver's side of one source address limited to a
// rate: over it, Gmail's 421 4.7.28 naming the IP. It counts what every
// source address attempted and was refused.
type ipThrottler struct {
	ip  string
	lim *rate.Limiter

	mu       sync.Mutex
	attempts map[string]int
	refused  map[string]int
}

func newIPThrottler(ip string, perSecond float64) *ipThrottler {
	return &ipThrottler{ip: ip, lim: rate.NewLimiter(rate.Limit(perSecond), 1),
		attempts: map[string]int{}, refused: map[string]int{}}
}

func (x *ipThrottler) rcpt(peer, _ string) error {
	ip, _, _ := net.SplitHostPort(peer)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.attempts[ip]++
	if ip == x.ip && !x.lim.Allow() {
		x.refused[ip]++
		return smtptest.Reply(421, "4.7.28", gmailIPText(ip))
	}
	return nil
}

func (x *ipThrottler) counts(ip string) (attempts, refused int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.attempts[ip], x.refused[ip]
}

// egressConfig parses sources and pools (YAML) the way the engine file
// is read, defaults included, and puts them into cfg.
func egressConfig(t *testing.T, cfg *config.Config, yaml string) {
	t.Helper()
	c, err := config.Parse("egress.yaml", []byte("hostname: mta.sluice.test\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sources, cfg.Pools, cfg.Lanes.Marketing.Pool, cfg.Lanes.Transactional.Pool =
		c.Sources, c.Pools, c.Lanes.Marketing.Pool, c.Lanes.Transactional.Pool
}

const twoSources = `sources:
  - {name: ip2, address: 127.0.0.2, ehlo: ip2.sluice.test}
  - {name: ip3, address: 127.0.0.3, ehlo: ip3.sluice.test}
`

// launchN launches an n-recipient campaign id to domain.
func launchN(t *testing.T, prefix, id string, n int, domain string) {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, domain)
	if _, err := launch.Launch(context.Background(), redistest.Client(t), keyspace.Space(prefix), path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
}

// sentFrom counts accepted messages by source IP.
func sentFrom(srv *smtptest.Server) map[string]int {
	by := map[string]int{}
	for _, m := range srv.Messages() {
		ip, _, _ := net.SplitHostPort(m.Peer)
		by[ip]++
	}
	return by
}

// Acceptance 1 of issue #13, small: a pool of two sources toward one
// provider that limits only 127.0.0.2 (Gmail's 4.7.28 IP reply beyond
// 12/s). The IP-scoped deferrals slow only that source's bucket; the
// other carries the rest: ≥ 80% leaves from 127.0.0.3, ≤ 5% of the
// attempts are deferred, and 127.0.0.2 is never sent faster than its
// limit. The record and the report name the source of each recipient.
// (bench/egress_test.go runs the 3,000-recipient version, and the same
// without IP scoping.)
func TestIPScopedDeferralsMoveTrafficToThePoolsOtherSource(t *testing.T) {
	const n, limit = 900, 12.0
	thr := newIPThrottler("127.0.0.2", limit)
	srv := smtptest.Start(t, smtptest.Options{RcptFrom: thr.rcpt, Quiet: true})
	prefix := redistest.Prefix(t)
	launchN(t, prefix, "ipscope", n, "gmail.test")
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Throttle.Default = config.Limits{StartRate: 60, MinRate: 1, MaxRate: 1000, Burst: 6, MaxConnections: 8}
	egressConfig(t, cfg, twoSources)
	start := time.Now()
	enginetest.Start(t, cfg)
	st := store.New(redistest.Client(t), keyspace.Space(prefix))
	s := enginetest.WaitFinished(t, st, "ipscope", 60*time.Second)
	took := time.Since(start)
	if s.Delivered != n {
		t.Fatalf("delivered %d of %d: %+v", s.Delivered, n, s)
	}
	by := sentFrom(srv)
	att2, ref2 := thr.counts("127.0.0.2")
	att3, _ := thr.counts("127.0.0.3")
	deferred := float64(ref2) / float64(att2+att3)
	rate2 := float64(by["127.0.0.2"]) / took.Seconds()
	t.Logf("%d in %v: from 127.0.0.3 %d (%.0f%%), from 127.0.0.2 %d (%.1f msg/s, limit %.0f); deferred %d of %d attempts (%.1f%%)",
		n, took.Round(time.Millisecond), by["127.0.0.3"], 100*float64(by["127.0.0.3"])/n, by["127.0.0.2"], rate2, limit,
		ref2, att2+att3, 100*deferred)
	if by["127.0.0.3"]+by["127.0.0.2"] != n {
		t.Fatalf("sent from %v, want only 127.0.0.2 and 127.0.0.3", by)
	}
	if by["127.0.0.3"] < n*8/10 {
		t.Errorf("127.0.0.3 sent %d of %d, want ≥ 80%%", by["127.0.0.3"], n)
	}
	if deferred > 0.05 {
		t.Errorf("%.1f%% of attempts deferred, want ≤ 5%%", 100*deferred)
	}
	if rate2 > limit*1.1 {
		t.Errorf("127.0.0.2 sent at %.1f msg/s, over its limit %.0f", rate2, limit)
	}
	if tried := float64(att2) / took.Seconds(); tried > limit*1.1 {
		t.Errorf("127.0.0.2 was tried at %.1f msg/s, over its limit %.0f", tried, limit)
	}
	// The record and the report say which source sent.
	// The history names each attempt's source: only 127.0.0.2 was ever
	// deferred.
	bySource, deferredFrom := map[string]int{}, map[string]int{}
	err := report.Scan(context.Background(), redistest.Client(t), st.Tally("ipscope"), 0, func(r report.Row) error {
		bySource[r.Source]++
		for _, a := range r.History {
			if a.Outcome == "deferred" {
				deferredFrom[a.Source]++
			}
		}
		if last := r.History[len(r.History)-1]; last.Source != r.Source {
			t.Errorf("%s: last attempt from %q, record says %q", r.Email, last.Source, r.Source)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bySource["ip2"] != by["127.0.0.2"] || bySource["ip3"] != by["127.0.0.3"] {
		t.Errorf("report's sources %v; the receiver saw %v", bySource, by)
	}
	if deferredFrom["ip2"] < ref2 || len(deferredFrom) > 1 {
		t.Errorf("history's deferred attempts by source %v; the receiver refused 127.0.0.2 %d times", deferredFrom, ref2)
	}
}

// Acceptance 2 of issue #13: transactional mail leaves only from the
// transactional pool's address, marketing only from its own, as the
// receiver sees the connections.
func TestLanesSendFromTheirOwnPools(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	prefix := redistest.Prefix(t)
	launchN(t, prefix, "news", 50, "mixed.test")
	cfg := enginetest.Config(prefix, srv.Addr)
	egressConfig(t, cfg, twoSources+`pools:
  - {name: tx, sources: [{source: ip2}]}
  - {name: bulk, sources: [{source: ip3}]}
lanes:
  transactional: {pool: tx}
  marketing: {pool: bulk}
`)
	enginetest.Start(t, cfg)
	ids := submitTransactional(t, prefix, 20, "mixed.test")
	st := store.New(redistest.Client(t), keyspace.Space(prefix))
	enginetest.WaitFinished(t, st, "news", 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for srv.Count() < 70 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	var tx, mk int
	for _, m := range srv.Messages() {
		ip, _, _ := net.SplitHostPort(m.Peer)
		isTx := strings.Contains(string(m.Data), "X-Test-Tx: ")
		switch {
		case isTx && ip == "127.0.0.2" && m.Helo == "ip2.sluice.test":
			tx++
		case !isTx && ip == "127.0.0.3" && m.Helo == "ip3.sluice.test":
			mk++
		default:
			t.Errorf("message to %v (transactional %v) came from %s as %s", m.To, isTx, ip, m.Helo)
		}
	}
	if tx != len(ids) || mk != 50 {
		t.Fatalf("received %d transactional of %d and %d marketing of 50", tx, len(ids), mk)
	}
}

// submitTransactional queues n transactional messages to tx%d@domain, each
// marked with an X-Test-Tx header, and returns their job ids.
func submitTransactional(t *testing.T, prefix string, n int, domain string) []string {
	t.Helper()
	ks := keyspace.Space(prefix)
	q := streams.New(redistest.Client(t), ks, "test")
	var ids []string
	for i := range n {
		to := fmt.Sprintf("tx%d@%s", i, domain)
		j := &streams.Job{ID: fmt.Sprintf("tx-%d", i), To: to, Lane: streams.Transactional,
			From: "app@sluice.test", First: time.Now().UnixMilli()}
		msg := fmt.Sprintf("From: app@sluice.test\r\nTo: %s\r\nX-Test-Tx: %d\r\nSubject: Code\r\n\r\nYour code\r\n", to, i)
		if err := q.AddMessage(context.Background(), j, streams.TransactionalTally(ks, time.Now()), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

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

// Issue #13: a sending-domain deferral one engine gets slows that
// domain's mail on every engine within about a second. Two engines share
// one Redis and one receiver, A sending from 127.0.0.2 and B from
// 127.0.0.3; the receiver refuses a-sender.test's mail from A only
// (Gmail's DKIM-domain 4.7.28), so B never gets a deferral of its own.
// The (domain, key) bucket is pinned at 5 msg/s: once A's deferral made
// it hot, B's attempts of that domain are paced by it, and the other
// domain's mail from B keeps its pace.
func TestSendingDomainSlowedByOneEngineSlowsEveryEngine(t *testing.T) {
	const na, nb, pinned = 1000, 200, 5.0
	type try struct {
		from, dom string
		at        time.Time
	}
	var mu sync.Mutex
	var tries []try
	var heatAt time.Time
	srv := smtptest.Start(t, smtptest.Options{Quiet: true, Discard: true, RcptFrom: func(peer, to string) error {
		ip, _, _ := net.SplitHostPort(peer)
		dom := to[strings.LastIndexByte(to, '@')+1:]
		mu.Lock()
		defer mu.Unlock()
		if ip == "127.0.0.2" && dom == "a.test" {
			if heatAt.IsZero() {
				heatAt = time.Now()
			}
			return smtptest.Reply(421, "4.7.28", gmailDomainText("a-sender.test"))
		}
		tries = append(tries, try{ip, dom, time.Now()})
		return nil
	}})
	// B's accepted attempts of dom in [from, to).
	fromB := func(dom string, from, to time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, x := range tries {
			if x.from == "127.0.0.3" && x.dom == dom && !x.at.Before(from) && x.at.Before(to) {
				n++
			}
		}
		return n
	}
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	ctx := context.Background()
	bucket := throttle.DomainBucket("route:"+srv.Addr, "a-sender.test")
	if err := throttle.Set(ctx, rdb, ks, bucket, pinned, 0, 0); err != nil {
		t.Fatal(err)
	}
	launchFrom(t, prefix, "doma", na, "a.test", "a-sender.test")
	launchFrom(t, prefix, "domb", nb, "b.test", "b-sender.test")
	for _, e := range []struct{ name, yaml string }{
		{"a", "sources:\n  - {name: ip2, address: 127.0.0.2, ehlo: ip2.sluice.test}\n"},
		{"b", "sources:\n  - {name: ip3, address: 127.0.0.3, ehlo: ip3.sluice.test}\n"},
	} {
		cfg := enginetest.Config(prefix, srv.Addr)
		cfg.Delivery.Consumer = "engine-" + e.name
		cfg.Throttle.Default = config.Limits{StartRate: 60, MinRate: 1, MaxRate: 1000, Burst: 6, MaxConnections: 8}
		egressConfig(t, cfg, e.yaml)
		enginetest.Start(t, cfg)
	}
	deadline := time.Now().Add(15 * time.Second)
	var heated time.Time // A's first deferral
	for heated.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("engine A never sent a-sender.test's mail")
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		heated = heatAt
		mu.Unlock()
	}
	// Within about a second B has heard; measure B's pace after that.
	from := heated.Add(2500 * time.Millisecond)
	const window = 4 * time.Second
	time.Sleep(time.Until(from.Add(window)))
	hot, err := throttle.Hot(ctx, rdb, ks, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if until, ok := hot[bucket]; !ok || until.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("hot buckets in Redis %v: want %s for about an hour", hot, bucket)
	}
	sentA := fromB("a.test", from, from.Add(window))
	// The pinned rate over the window, its burst and a permit in flight.
	if most := int(pinned*window.Seconds()) + 12; sentA > most {
		t.Errorf("B sent a-sender.test's mail %d times in %v after A's deferral: more than %d, not paced by %s", sentA, window, most, bucket)
	}
	t.Logf("B's a-sender.test attempts in the %v window: %d (before: %d)", window, sentA, fromB("a.test", time.Time{}, from))
	st := store.New(rdb, ks)
	sb := enginetest.WaitFinished(t, st, "domb", 30*time.Second)
	if sb.Delivered != nb {
		t.Errorf("b-sender.test delivered %d of %d", sb.Delivered, nb)
	}
	if n := fromB("b.test", time.Time{}, time.Now().Add(time.Hour)); n == 0 {
		t.Error("B sent none of b-sender.test's mail")
	}
	sa, err := st.Status(ctx, "doma")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Delivered >= na {
		t.Errorf("a-sender.test's %d recipients all delivered already: not paced", na)
	}
	buckets, err := throttle.Inspect(ctx, rdb, ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		if b.Provider == bucket && b.Engines < 2 {
			t.Errorf("%s consulted by %d engines, want both", bucket, b.Engines)
		}
	}
}
