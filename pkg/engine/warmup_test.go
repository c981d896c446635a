package engine_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/route"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// simClock is a settable clock (the warm-up's days).
type simClock struct{ ns atomic.Int64 }

func (c *simClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *simClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *simClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// peerCounter counts RCPTs by source IP and defers every nth one from
// deferIP (0: none) with Gmail's 4.7.28 IP text.
type peerCounter struct {
	deferIP string
	nth     int
	mu      sync.Mutex
	seen    map[string]int
}

func (p *peerCounter) rcpt(peer, _ string) error {
	ip, _, _ := net.SplitHostPort(peer)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[ip]++
	if ip == p.deferIP && p.nth > 0 && p.seen[ip]%p.nth == 0 {
		return smtptest.Reply(421, "4.7.28", gmailIPText(ip))
	}
	return nil
}

func (p *peerCounter) of(ip string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[ip]
}

// launchPool launches n recipients at domain as campaign id sending from
// pool ("" the lane's).
func launchPool(t *testing.T, prefix, id string, n int, domain, pool string) {
	t.Helper()
	dir := t.TempDir()
	list := "email\n"
	for i := range n {
		list += fmt.Sprintf("%s%04d@%s\n", id, i, domain)
	}
	enginetest.Write(t, filepath.Join(dir, id+".csv"), list)
	y := fmt.Sprintf("id: %s\nfrom: news@sluice.test\nsubject: hi\ntext: hello\nrecipients: %s.csv\n", id, id)
	if pool != "" {
		y += "pool: " + pool + "\n"
	}
	path := enginetest.Write(t, filepath.Join(dir, id+".yaml"), y)
	if _, err := launch.Launch(context.Background(), redistest.Client(t), keyspace.Space(prefix), path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
}

// Acceptance 3 of issue #13, through the engine's line server with a
// simulated warm-up clock: source ip2 is on day 1 of [100, 200, 400].
//   - Toward a healthy provider, in a pool with the warm ip3 (weights 9:1,
//     so ip2's share is well above its cap whatever the draws), ip2 sends
//     exactly 100 that day and ip3 the rest.
//   - Toward a provider that defers 1 in 12 of ip2's attempts (8%, above
//     the 5% threshold), from a pool of ip2 alone, ip2 sends 100 and the
//     rest waits in line for the next day.
//   - The next day the healthy provider's cap is 200 (ip2 alone sends
//     exactly 200 of a new campaign), the deferring one's holds at 100
//     (and the waiting rest of its campaign goes out).
func TestWarmupCapsASourceInTheLineServer(t *testing.T) {
	healthy := &peerCounter{seen: map[string]int{}}
	flaky := &peerCounter{deferIP: "127.0.0.2", nth: 12, seen: map[string]int{}}
	hsrv := smtptest.Start(t, smtptest.Options{RcptFrom: healthy.rcpt, Discard: true})
	fsrv := smtptest.Start(t, smtptest.Options{RcptFrom: flaky.rcpt, Discard: true, Quiet: true})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	cfg := enginetest.Config(prefix, hsrv.Addr)
	cfg.Routes = route.Table{{Match: "healthy.test", Host: hsrv.Addr}, {Match: "flaky.test", Host: fsrv.Addr}}
	egressConfig(t, cfg, `sources:
  - name: ip2
    address: 127.0.0.2
    warmup: {schedule: [100, 200, 400], start: 2026-01-15, hourly_burst: 24}
  - {name: ip3, address: 127.0.0.3}
pools:
  - {name: mixed, sources: [{source: ip2, weight: 9}, {source: ip3, weight: 1}]}
  - {name: fresh, sources: [{source: ip2}]}
lanes:
  marketing: {pool: mixed}
  transactional: {pool: mixed}
`)
	clock := &simClock{}
	day1 := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	clock.set(day1)
	enginetest.StartWith(t, cfg, func(d *engine.Deps) { d.WarmupClock = clock.now })
	st := store.New(rdb, ks)

	// Day 1.
	launchPool(t, prefix, "a", 300, "healthy.test", "")
	launchPool(t, prefix, "b", 150, "flaky.test", "fresh")
	enginetest.WaitFinished(t, st, "a", 30*time.Second)
	if got2, got3 := healthy.of("127.0.0.2"), healthy.of("127.0.0.3"); got2 != 100 || got3 != 200 {
		t.Fatalf("day 1 toward the healthy provider: ip2 sent %d (want its cap, 100), ip3 %d (want 200)", got2, got3)
	}
	deadline := time.Now().Add(20 * time.Second)
	for flaky.of("127.0.0.2") < 100 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the deferred ones came back and wait too
	if got, s := flaky.of("127.0.0.2"), status(t, st, "b"); got != 100 || s.State == store.StateFinished || flaky.of("127.0.0.3") != 0 {
		t.Fatalf("day 1 toward the deferring provider: ip2 attempted %d (want 100, the rest waiting), ip3 %d; campaign %+v", got, flaky.of("127.0.0.3"), s)
	}

	// Day 2: the healthy provider's cap moves to 200, the other's holds.
	clock.add(24 * time.Hour)
	w := warmup.New(rdb, ks, warmup.Plans(cfg))
	hs, err := w.Advance(context.Background(), "ip2", "route:"+hsrv.Addr, clock.now())
	if err != nil || hs.Cap != 200 || hs.Verdict != "healthy" {
		t.Fatalf("healthy provider on day 2: %+v %v; want cap 200 after a healthy day", hs, err)
	}
	fs, err := w.Advance(context.Background(), "ip2", "route:"+fsrv.Addr, clock.now())
	if err != nil || fs.Cap != 100 || fs.Verdict != "hold" {
		t.Fatalf("deferring provider on day 2: %+v %v; want cap 100 held", fs, err)
	}
	if _, err := streams.New(rdb, ks, "test").WakeAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	launchPool(t, prefix, "c", 300, "healthy.test", "fresh")
	enginetest.WaitFinished(t, st, "b", 30*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for healthy.of("127.0.0.2") < 300 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if got, s := healthy.of("127.0.0.2")-100, status(t, st, "c"); got != 200 || s.Delivered != 200 {
		t.Fatalf("day 2 toward the healthy provider from ip2 alone: %d sent, want its new cap 200 and the rest waiting; campaign %+v", got, s)
	}
	if got := flaky.of("127.0.0.3"); got != 0 {
		t.Fatalf("pool fresh sent %d from ip3", got)
	}
}

func status(t *testing.T, st *store.Store, id string) store.Status {
	t.Helper()
	s, err := st.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
