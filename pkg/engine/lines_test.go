package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/route"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// TestPacedProviderDoesNotHoldUpOthers: one campaign, recipients shuffled
// between a fast receiver and one paced at 10 msg/s by its limits. The
// fast part must go out at once (its jobs never queue behind the paced
// ones) and the paced part at its rate, never faster.
func TestPacedProviderDoesNotHoldUpOthers(t *testing.T) {
	const nFast, nPaced, rate = 400, 100, 10.0
	fast := smtptest.Start(t, smtptest.Options{Discard: true})
	paced := smtptest.Start(t, smtptest.Options{Discard: true})
	dir := t.TempDir()
	var rows []string
	for i := 0; i < nFast; i++ {
		rows = append(rows, fmt.Sprintf("f%04d@fast.test", i))
	}
	for i := 0; i < nPaced; i++ {
		rows = append(rows, fmt.Sprintf("p%04d@paced.test", i))
	}
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	enginetest.Write(t, filepath.Join(dir, "mix.csv"), "email\n"+strings.Join(rows, "\n")+"\n")
	path := enginetest.Write(t, filepath.Join(dir, "mix.yaml"), `id: mix
from: news@sluice.test
subject: hi
text: hello
recipients: mix.csv
`)
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, fast.Addr)
	cfg.Routes = route.Table{{Match: "paced.test", Host: paced.Addr}, {Match: "*", Host: fast.Addr}}
	cfg.Throttle.Providers = map[string]config.Limits{
		"route:" + paced.Addr: {StartRate: rate, MinRate: rate, MaxRate: rate, Burst: 1, MaxConnections: 2},
	}
	start := time.Now()
	enginetest.Start(t, cfg)
	deadline := start.Add(10 * time.Second)
	for fast.Count() < nFast && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fastTook, pacedThen := time.Since(start), paced.Count()
	if fast.Count() != nFast {
		t.Fatalf("fast receiver got %d of %d in 10s (paced got %d)", fast.Count(), nFast, paced.Count())
	}
	// A shared FIFO would have taken nPaced/rate = 10 s for the fast part.
	if fastTook > 3*time.Second {
		t.Fatalf("fast part took %v: held up behind the paced provider", fastTook)
	}
	time.Sleep(2 * time.Second)
	pacedRate := float64(paced.Count()-pacedThen) / 2
	t.Logf("fast %d in %v; paced %d by then, then %.1f msg/s (limit %.0f)", nFast, fastTook.Round(time.Millisecond), pacedThen, pacedRate, rate)
	if pacedRate > rate*1.3 || pacedRate < rate*0.6 {
		t.Fatalf("paced provider got %.1f msg/s, want about %.0f", pacedRate, rate)
	}
	// A run holds a pack's outcomes until the pack's end, at most 250 ms
	// (holdOutcomes): the status catches up with what was received.
	st := store.New(rdb, ks)
	var s store.Status
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := int64(fast.Count() + paced.Count())
		s, _ = st.Status(context.Background(), "mix")
		if s.Deferred != 0 || s.Delivered == got || time.Now().After(deadline) {
			if s.Deferred != 0 || s.Delivered != got {
				t.Fatalf("status %+v with %d+%d received", s, fast.Count(), paced.Count())
			}
			break
		}
	}
}

// TestQueueDepthGauges: /metrics' line depth for a paced destination
// shows its waiting jobs, and the figure goes down as they are sent.
func TestQueueDepthGauges(t *testing.T) {
	const n, rate = 300, 25.0
	srv := smtptest.Start(t, smtptest.Options{Discard: true})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "gauge", n, "gauge.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	key := "route:" + srv.Addr
	cfg.Throttle.Providers = map[string]config.Limits{key: {StartRate: rate, MinRate: rate, MaxRate: rate, Burst: 1, MaxConnections: 2}}
	enginetest.Start(t, cfg)
	waiting := func() float64 {
		mfs, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, mf := range mfs {
			if mf.GetName() != "sluice_line_depth" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "key" && lp.GetValue() == key {
						sum += m.GetGauge().GetValue()
					}
				}
			}
		}
		return sum
	}
	var first float64
	deadline := time.Now().Add(5 * time.Second)
	for first = waiting(); first == 0 && time.Now().Before(deadline); first = waiting() {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(6 * time.Second) // the gauges are refreshed every 5 s
	later := waiting()
	t.Logf("line depth of %s: %.0f, then %.0f (delivered %d)", key, first, later, srv.Count())
	if first < n/2 || later >= first || later <= 0 {
		t.Fatalf("line depth %v then %v: want most of %d waiting, then fewer but some", first, later, n)
	}
	mfs, _ := prometheus.DefaultGatherer.Gather()
	settled := uint64(0)
	for _, mf := range mfs {
		if mf.GetName() == "sluice_settle_seconds" {
			settled = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if settled+10 < uint64(srv.Count()) { // a few may be received and not settled yet
		t.Fatalf("sluice_settle_seconds counted %d settles, %d messages were delivered", settled, srv.Count())
	}
}
