package bench

import (
	"context"
	"net"
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
)

// BenchmarkEgressIPScoping is acceptance 1 of issue #13: a pool of two
// sources, 127.0.0.2 and 127.0.0.3 (weight 1 each), toward a receiver
// that accepts 127.0.0.2 at 5 msg/s and answers it Gmail's own 421
// 4.7.28 "... from your IP address ..." beyond that, and accepts
// 127.0.0.3 freely; a 3,000-recipient campaign. per-source: the throttle
// state is per (source, key) (the default); one-state: per key only
// (throttle.one_state_per_provider), how sluice paced before sources.
// Figures are the receiver's: messages accepted per source, attempts
// refused, and 127.0.0.2's rate (accepted and attempted) over the time it
// sent; a run ends when the campaign does, or after egressWithin.
func BenchmarkEgressIPScoping(b *testing.B) {
	for _, v := range []struct {
		name     string
		oneState bool
	}{{"per-source", false}, {"one-state", true}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				egressRun(b, 3000, 5, v.oneState)
			}
		})
	}
}

func egressRun(b *testing.B, n int, limit float64, oneState bool) {
	rcv := &byIP{lim: rate.NewLimiter(rate.Limit(limit), 1), att: map[string]int{}, ok: map[string]int{},
		first: map[string]time.Time{}, last: map[string]time.Time{}}
	srv := smtptest.Start(b, smtptest.Options{RcptFrom: rcv.rcpt, Discard: true, Quiet: true})
	prefix := redistest.Prefix(b)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(b)
	path := enginetest.Campaign(b, b.TempDir(), "egress", n, "gmail.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		b.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Delivery.Workers = 32
	cfg.Throttle.Default = config.Limits{StartRate: 100, MinRate: 1, MaxRate: 1000, Burst: 10, MaxConnections: 10}
	cfg.Throttle.OneStatePerProvider = oneState
	c, err := config.Parse("egress.yaml", []byte(`hostname: mta.sluice.test
sources:
  - {name: ip2, address: 127.0.0.2, ehlo: ip2.sluice.test}
  - {name: ip3, address: 127.0.0.3, ehlo: ip3.sluice.test}
`))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Sources, cfg.Pools, cfg.Lanes.Marketing.Pool, cfg.Lanes.Transactional.Pool =
		c.Sources, c.Pools, c.Lanes.Marketing.Pool, c.Lanes.Transactional.Pool
	b.ResetTimer()
	start := time.Now()
	enginetest.Start(b, cfg)
	st := store.New(rdb, ks)
	done := 0
	for time.Since(start) < egressWithin {
		s, err := st.Status(context.Background(), "egress")
		if err != nil {
			b.Fatal(err)
		}
		if done = int(s.Delivered); s.State == store.StateFinished {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	ip2, ip3 := "127.0.0.2", "127.0.0.3"
	att := rcv.att[ip2] + rcv.att[ip3]
	refused := att - rcv.ok[ip2] - rcv.ok[ip3]
	span2 := rcv.last[ip2].Sub(rcv.first[ip2]).Seconds()
	sent := rcv.ok[ip2] + rcv.ok[ip3]
	b.ReportMetric(took.Seconds(), "s")
	b.ReportMetric(float64(done), "delivered")
	b.ReportMetric(100*float64(rcv.ok[ip3])/float64(sent), "%from_ip3")
	b.ReportMetric(100*float64(refused)/float64(att), "%deferred")
	b.ReportMetric(float64(rcv.ok[ip2])/span2, "ip2_accepted/s")
	b.ReportMetric(float64(rcv.att[ip2])/span2, "ip2_attempted/s")
	b.ReportMetric(float64(rcv.ok[ip3])/took.Seconds(), "ip3_msg/s")
	b.Logf("%d of %d recipients delivered in %v: ip3 %d (%.1f/s), ip2 %d (accepted %.2f/s, attempted %.2f/s over %.0f s); %d of %d attempts deferred",
		done, n, took.Round(time.Millisecond), rcv.ok[ip3], float64(rcv.ok[ip3])/took.Seconds(), rcv.ok[ip2],
		float64(rcv.ok[ip2])/span2, float64(rcv.att[ip2])/span2, span2, refused, att)
}

// egressWithin bounds a run: without IP scoping the campaign crawls at
// the limited source's pace, and the rates are what the run is about.
const egressWithin = 2 * time.Minute

// byIP is the receiver: 127.0.0.2 limited to lim with Gmail's 4.7.28 IP
// reply beyond it, everyone else accepted; counts per source address.
type byIP struct {
	lim         *rate.Limiter
	mu          sync.Mutex
	att, ok     map[string]int
	first, last map[string]time.Time
}

func (x *byIP) rcpt(peer, _ string) error {
	ip, _, _ := net.SplitHostPort(peer)
	now := time.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.att[ip]++
	if x.first[ip].IsZero() {
		x.first[ip] = now
	}
	x.last[ip] = now
	if ip == "127.0.0.2" && !x.lim.Allow() {
		return smtptest.Reply(421, "4.7.28", "Gmail has detected an unusual rate of email originating from your IP address "+ip+
			". To protect our users from spam, email sent from your IP address has been temporarily rate limited.")
	}
	x.ok[ip]++
	return nil
}
