package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/route"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// The per-destination lines benchmarks (issue 11): one campaign mixing a
// fast receiver and one paced by its limits, a provider suspended with
// 100,000 jobs waiting, the long tail of small domains, and a rate raised
// by an operator while jobs wait.

// campaignOf writes and launches a campaign to the given addresses
// (shuffled) and returns its store.
func campaignOf(b *testing.B, rdb *redis.Client, ks keyspace.Space, id string, addrs []string) *store.Store {
	b.Helper()
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	dir := b.TempDir()
	enginetest.Write(b, filepath.Join(dir, id+".csv"), "email\n"+strings.Join(addrs, "\n")+"\n")
	path := enginetest.Write(b, filepath.Join(dir, id+".yaml"), fmt.Sprintf(`id: %s
from: news@sluice.test
subject: Lines
text: |
  A message of about a kilobyte once the headers are added.
  Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod
  tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim
  veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea.
recipients: %s.csv
`, id, id))
	res, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{})
	if err != nil || res.Enqueued != len(addrs) {
		b.Fatalf("launch: %+v %v", res, err)
	}
	return store.New(rdb, ks)
}

func addrs(n int, prefix, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d@%s", prefix, i, domain)
	}
	return out
}

// waitCount waits until count() reaches n and returns how long it took.
func waitCount(b *testing.B, count func() int, n int, within time.Duration) time.Duration {
	b.Helper()
	t0 := time.Now()
	for count() < n {
		if time.Since(t0) > within {
			b.Fatalf("%d of %d after %v", count(), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0)
}

// BenchmarkLinesMixed (acceptance 1): 10,000 recipients at a fast
// receiver, alone, then shuffled with 5,000 at a provider pinned at
// 20 msg/s, in one run: the fast part's time in both, and the paced
// part's rate.
func BenchmarkLinesMixed(b *testing.B) {
	const nFast, nPaced, rate = 10000, 5000, 20.0
	for i := 0; i < b.N; i++ {
		fastAlone := mixedRun(b, nFast, 0, rate)
		fastMixed := mixedRun(b, nFast, nPaced, rate)
		b.ReportMetric(fastAlone.fast.Seconds(), "fast-alone-s")
		b.ReportMetric(fastMixed.fast.Seconds(), "fast-mixed-s")
		b.ReportMetric(fastMixed.fast.Seconds()/fastAlone.fast.Seconds(), "mixed/alone")
		b.ReportMetric(fastMixed.pacedRate, "paced-msg/s")
		b.ReportMetric(float64(fastMixed.deferred), "paced-deferred")
	}
}

type mixed struct {
	fast      time.Duration
	pacedRate float64
	deferred  int64
}

func mixedRun(b *testing.B, nFast, nPaced int, rate float64) mixed {
	prefix := redistest.Prefix(b)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(b)
	fast := smtptest.Start(b, smtptest.Options{Discard: true})
	paced := smtptest.Start(b, smtptest.Options{Discard: true})
	list := append(addrs(nFast, "f", "fast.test"), addrs(nPaced, "p", "paced.test")...)
	st := campaignOf(b, rdb, ks, "mix", list)
	cfg := enginetest.Config(prefix, fast.Addr)
	cfg.Delivery.Workers = 64
	cfg.Routes = route.Table{{Match: "paced.test", Host: paced.Addr}, {Match: "*", Host: fast.Addr}}
	cfg.Throttle.Providers = map[string]config.Limits{
		"route:" + paced.Addr: {StartRate: rate, MinRate: rate, MaxRate: rate, Burst: 1, MaxConnections: 2},
	}
	enginetest.Start(b, cfg)
	var out mixed
	out.fast = waitCount(b, fast.Count, nFast, 2*time.Minute)
	if nPaced > 0 {
		// The paced part's rate over 10 s once the fast part is done.
		n0 := paced.Count()
		time.Sleep(10 * time.Second)
		out.pacedRate = float64(paced.Count()-n0) / 10
		s, _ := st.Status(context.Background(), "mix")
		out.deferred = s.Deferred
		// The rest would take minutes at 20/s: cancel it.
		if _, err := control.Cancel(context.Background(), rdb, ks, "mix"); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkLinesSuspended (acceptance 2): 100,000 jobs wait for a
// provider suspended for 60 s (a response rule on the receiver's first
// reply): the commands redis-server executes meanwhile, and the rate the
// line drains at once the suspension ends.
func BenchmarkLinesSuspended(b *testing.B) {
	const n, suspend = 100000, 60 * time.Second
	for i := 0; i < b.N; i++ {
		prefix := redistest.Prefix(b)
		ks := keyspace.Space(prefix)
		rdb := redistest.Client(b)
		var open atomic.Bool
		srv := smtptest.Start(b, smtptest.Options{Discard: true, Rcpt: func(string) error {
			if !open.Load() {
				return smtptest.Reply(421, "4.7.0", "[TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints")
			}
			return nil
		}})
		campaignOf(b, rdb, ks, "susp", addrs(n, "s", "held.test"))
		cfg := enginetest.Config(prefix, srv.Addr)
		cfg.Delivery.Workers = 64
		key := "route:" + srv.Addr
		cfg.Throttle.Providers = map[string]config.Limits{key: {StartRate: 2000, MaxRate: 2000, Burst: 200, MaxConnections: 16}}
		cfg.Throttle.Rules = []config.Rule{{Name: "hold", Providers: []string{key}, Match: "TSS04", Action: "suspend", Duration: suspend}}
		enginetest.Start(b, cfg)
		// Wait for the suspension, then for every job to be in line.
		t0 := time.Now()
		for {
			ss, _ := throttle.Inspect(context.Background(), rdb, ks)
			if len(ss) > 0 && ss[0].SuspendedUntil.After(time.Now()) {
				break
			}
			if time.Since(t0) > 20*time.Second {
				b.Fatal("provider never suspended")
			}
			time.Sleep(50 * time.Millisecond)
		}
		suspendedAt := time.Now()
		q := streams.New(rdb, ks, "bench")
		for {
			stream, _, _ := q.Depth(context.Background(), streams.Marketing)
			if stream == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		open.Store(true) // the receiver accepts from now on; the suspension holds
		time.Sleep(2 * time.Second)
		c0, t1 := commands(b, rdb), time.Now()
		time.Sleep(time.Until(suspendedAt.Add(suspend - 3*time.Second)))
		perSec := float64(commands(b, rdb)-c0-1) / time.Since(t1).Seconds()
		// Drain once the suspension ends.
		d0 := srv.Count()
		waitCount(b, srv.Count, d0+1, suspend)
		drainStart, c1 := time.Now(), srv.Count()
		time.Sleep(5 * time.Second)
		drain := float64(srv.Count()-c1) / time.Since(drainStart).Seconds()
		b.ReportMetric(perSec, "redis-cmds/s-waiting")
		b.ReportMetric(drain, "drain-msg/s")
		b.ReportMetric(time.Since(suspendedAt).Seconds()-5, "suspension-s")
		if _, err := control.Cancel(context.Background(), rdb, ks, "susp"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLinesLongTail (acceptance 3): 2,000 domains with 5 recipients
// each, every domain its own MX host (all on one local sink).
func BenchmarkLinesLongTail(b *testing.B) {
	const domains, each = 2000, 5
	for i := 0; i < b.N; i++ {
		prefix := redistest.Prefix(b)
		ks := keyspace.Space(prefix)
		rdb := redistest.Client(b)
		srv := smtptest.Start(b, smtptest.Options{Discard: true})
		_, port, _ := strings.Cut(srv.Addr, ":")
		dns := dnstest.Start(b)
		var list []string
		for d := 0; d < domains; d++ {
			dom := fmt.Sprintf("d%04d.test", d)
			dns.Add(fmt.Sprintf("%s. 300 IN MX 10 mx.%s.", dom, dom), fmt.Sprintf("mx.%s. 300 IN A 127.0.0.1", dom))
			for r := 0; r < each; r++ {
				list = append(list, fmt.Sprintf("u%d@%s", r, dom))
			}
		}
		campaignOf(b, rdb, ks, "tail", list)
		cfg := enginetest.Config(prefix, srv.Addr)
		cfg.Delivery.Workers = 64
		cfg.Routes = nil
		cfg.DNS.Resolver = dns.Addr
		cfg.Delivery.Port, _ = strconv.Atoi(port)
		t0 := time.Now()
		enginetest.Start(b, cfg)
		took := waitCount(b, srv.Count, domains*each, 5*time.Minute)
		_ = t0
		b.ReportMetric(float64(domains*each)/took.Seconds(), "delivered-msg/s")
		b.ReportMetric(float64(srv.Conns()), "smtp-sessions")
	}
}

// BenchmarkLinesRateRaise (acceptance 4): a line waits at 5 msg/s; an
// operator sets the key's rate to 100 (as `campaignctl limits set` does):
// how long until the receiver sees the new rate.
func BenchmarkLinesRateRaise(b *testing.B) {
	const n, low, high = 3000, 5.0, 100.0
	for i := 0; i < b.N; i++ {
		prefix := redistest.Prefix(b)
		ks := keyspace.Space(prefix)
		rdb := redistest.Client(b)
		srv := smtptest.Start(b, smtptest.Options{Discard: true})
		campaignOf(b, rdb, ks, "raise", addrs(n, "r", "slow.test"))
		cfg := enginetest.Config(prefix, srv.Addr)
		key := "route:" + srv.Addr
		cfg.Throttle.Providers = map[string]config.Limits{key: {StartRate: low, MinRate: low, MaxRate: 1000, Burst: 1, MaxConnections: 8}}
		enginetest.Start(b, cfg)
		waitCount(b, srv.Count, 10, 30*time.Second)
		time.Sleep(2 * time.Second)
		if err := throttle.Set(context.Background(), rdb, ks, key, high, 0, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := streams.New(rdb, ks, "campaignctl").Wake(context.Background(), key); err != nil {
			b.Fatal(err)
		}
		set := time.Now()
		// Reached: 90% of the new rate over a 500 ms window.
		var reached time.Duration
		prev, prevAt := srv.Count(), time.Now()
		for time.Since(set) < 15*time.Second {
			time.Sleep(500 * time.Millisecond)
			c, at := srv.Count(), time.Now()
			if float64(c-prev)/at.Sub(prevAt).Seconds() >= 0.9*high {
				reached = at.Sub(set)
				break
			}
			prev, prevAt = c, at
		}
		if reached == 0 {
			b.Fatalf("rate %g not reached in 15 s", high)
		}
		b.ReportMetric(reached.Seconds(), "s-to-new-rate")
		if _, err := control.Cancel(context.Background(), rdb, ks, "raise"); err != nil {
			b.Fatal(err)
		}
	}
}

// commands is redis-server's total_commands_processed.
func commands(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO")
	return 0
}
