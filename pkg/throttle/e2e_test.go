package throttle_test

// End to end: a real engine, real redis-server, real SMTP to simulated
// providers (mxsim), and, for MX routing, an in-process DNS server.

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/mxsim"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

func sim(t *testing.T, addr string, cfg mxsim.Config) *mxsim.Server {
	t.Helper()
	s, err := mxsim.Listen(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func launchCampaign(t *testing.T, ks keyspace.Space, id string, n int, domain string) {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, domain)
	if _, err := launch.Launch(context.Background(), redistest.Client(t), ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, ks keyspace.Space, key string) throttle.Status {
	t.Helper()
	all, err := throttle.Inspect(context.Background(), redistest.Client(t), ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Provider == key {
			return s
		}
	}
	return throttle.Status{}
}

func waitFinished(t *testing.T, ks keyspace.Space, id string, within time.Duration) store.Status {
	t.Helper()
	return enginetest.WaitFinished(t, store.New(redistest.Client(t), ks), id, within)
}

// TestRecipientDeferralsDoNotSlowTheProvider: Gmail's 450 4.2.1 ("the
// user … is receiving mail at a rate …") retries that recipient and
// leaves the provider's rate alone; the provider's own 451 4.7.500 does
// slow it.
func TestRecipientDeferralsDoNotSlowTheProvider(t *testing.T) {
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	var mu sync.Mutex
	seen := map[string]bool{}
	rcv := sim(t, "127.0.0.1:0", mxsim.Config{Rcpt: func(to string) *mxsim.Reply {
		mu.Lock()
		defer mu.Unlock()
		if !seen[to] {
			seen[to] = true
			return &mxsim.GmailReceivingTooFast
		}
		return nil
	}})
	launchCampaign(t, ks, "c", 40, "bigmail.test")
	cfg := enginetest.Config(prefix, rcv.Addr())
	cfg.Throttle.ProvidersFile = "testdata/providers.yaml" // bigmail: 100/s
	cfg.Lanes.Marketing.Retry = []time.Duration{100 * time.Millisecond}
	enginetest.Start(t, cfg)
	if s := waitFinished(t, ks, "c", 10*time.Second); s.Delivered != 40 {
		t.Fatalf("campaign %+v", s)
	}
	// Engines report outcomes every 250 ms.
	s := state(t, ks, "bigmail")
	for deadline := time.Now().Add(2 * time.Second); s.Delivered < 40 && time.Now().Before(deadline); s = state(t, ks, "bigmail") {
		time.Sleep(50 * time.Millisecond)
	}
	if s.Decreases != 0 || s.Rate < 100 || s.Deferred != 40 || s.Delivered != 40 || s.State != "normal" {
		t.Fatalf("after 40 recipient deferrals: %+v; want the rate untouched", s)
	}

	// The same provider pacing sluice (over 20/s) slows it down.
	prefix2 := redistest.Prefix(t)
	ks2 := keyspace.Space(prefix2)
	busy := sim(t, "127.0.0.1:0", mxsim.Config{Rate: 20, Burst: 2})
	launchCampaign(t, ks2, "c", 100, "bigmail.test")
	cfg2 := enginetest.Config(prefix2, busy.Addr())
	cfg2.Throttle.ProvidersFile = "testdata/providers.yaml"
	enginetest.Start(t, cfg2)
	deadline := time.Now().Add(5 * time.Second)
	for s = state(t, ks2, "bigmail"); s.Decreases == 0 && time.Now().Before(deadline); s = state(t, ks2, "bigmail") {
		time.Sleep(50 * time.Millisecond)
	}
	if s.Decreases == 0 || s.Rate >= 100 || !strings.Contains(s.LastDeferral, "4.7.500") {
		t.Fatalf("under provider deferrals: %+v; want the rate cut", s)
	}
}

// loopbackPort finds a port free on every address given.
func loopbackPort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		free := true
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// TestTSS04SuspendsYahooWhileGoogleFlows: domains hosted on Yahoo's and
// Google's MX hosts (recognised by MX suffix) go to two receivers; Yahoo
// answers [TSS04]. Yahoo must be suspended for two hours with its jobs
// waiting (neither failed nor retried), while Google's mail all goes out.
func TestTSS04SuspendsYahooWhileGoogleFlows(t *testing.T) {
	port := loopbackPort(t, "127.0.0.2", "127.0.0.3")
	yahoo := sim(t, net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), mxsim.Config{
		Rcpt: func(string) *mxsim.Reply { return &mxsim.YahooTSS04 }})
	google := sim(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(port)), mxsim.Config{})
	zone := dnstest.Start(t,
		"yahoo-hosted.test. 300 IN MX 1 mta5.am0.yahoodns.test.",
		"mta5.am0.yahoodns.test. 300 IN A 127.0.0.2",
		"workspace.test. 300 IN MX 1 aspmx.l.google.test.",
		"workspace.test. 300 IN MX 5 alt1.aspmx.l.google.test.",
		"aspmx.l.google.test. 300 IN A 127.0.0.3",
		"alt1.aspmx.l.google.test. 300 IN A 127.0.0.3",
	)
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	launchCampaign(t, ks, "y", 20, "yahoo-hosted.test")
	launchCampaign(t, ks, "g", 300, "workspace.test")
	cfg := enginetest.Config(prefix, "")
	cfg.Routes = nil
	cfg.DNS.Resolver, cfg.DNS.Timeout = zone.Addr, time.Second
	cfg.Delivery.Port = port
	cfg.Throttle.ProvidersFile = "testdata/providers.yaml"
	cfg.Throttle.Providers = map[string]config.Limits{"yahoo": {StartRate: 5, Burst: 1, MaxConnections: 1}}
	enginetest.Start(t, cfg)

	if g := waitFinished(t, ks, "g", 15*time.Second); g.Delivered != 300 || google.Stats().Accepted != 300 {
		t.Fatalf("google campaign %+v, receiver took %d", g, google.Stats().Accepted)
	}
	tried := yahoo.Stats().Scripted
	time.Sleep(time.Second) // any job let through the suspension would show as another attempt
	y := state(t, ks, "yahoo")
	if y.State != "suspended" || y.SuspendedBy != "tss04" || time.Until(y.SuspendedUntil) < 119*time.Minute {
		t.Fatalf("yahoo %+v", y)
	}
	if now := yahoo.Stats().Scripted; tried < 1 || tried > 3 || now != tried {
		t.Fatalf("yahoo receiver saw %d attempts, then %d; want 1-3 before the suspension and none after", tried, now)
	}
	st, err := store.New(redistest.Client(t), ks).Status(context.Background(), "y")
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 0 || st.Failed != 0 || st.Bounced != 0 || st.Queued != 20 {
		t.Fatalf("yahoo campaign %+v; want every job still queued", st)
	}
	if g := state(t, ks, "google"); g.State == "suspended" || g.Delivered != 300 {
		t.Fatalf("google %+v", g)
	}
}
