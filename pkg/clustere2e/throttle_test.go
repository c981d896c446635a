package clustere2e

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/mxsim"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
)

// The provider's limits in sluice's providers file: 50 msg/s (a burst of
// 5) over at most 5 connections, for every engine together.
const (
	capRate  = 50
	capConns = 5
	// capSeen is the most the provider may see in any one-second window
	// (issue #12, acceptance 4).
	capSeen = 55
)

const capProviders = `providers:
  - name: capped
    domains: [` + domain + `]
    limits: {start_rate: 50, max_rate: 50, burst: 5, max_connections: 5, max_messages_per_connection: 100}
`

// TestProviderLimits (acceptance 4): two engines on the cluster, each with
// its own throttle, sharing only Redis, stay together within a provider's
// rate and connections, as measured at the provider (a receiver that
// refuses nothing and takes 20 ms per message, so connections count): at
// most 55 messages in any second after the first, and at most 5 sessions
// open at once (busy or idle in either engine's pool) and so at most 5
// messages taken in at once.
//
// Not parallel: it runs alone, before the others, so the rate it
// measures is the throttle's and not a starved machine's.
func TestProviderLimits(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 250
	}
	w := newWorld(t, "capped", n)
	var mu sync.Mutex
	copies := map[string]int{}
	active, busiest := 0, 0 // messages being taken in at once
	sim, err := mxsim.Listen("127.0.0.1:0", mxsim.Config{
		Message: func(_ string, to []string, _ []byte) error {
			mu.Lock()
			active++
			busiest = max(busiest, active)
			for _, a := range to {
				copies[a]++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // the provider's time per message
			mu.Lock()
			active--
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	providers := enginetest.Write(t, filepath.Join(w.dir, "providers.yaml"), capProviders)
	w.launch(launch.Options{})
	for _, name := range []string{"e1", "e2"} {
		cfg := w.config(name, sim.Addr())
		cfg.Throttle.ProvidersFile = providers
		enginetest.Start(t, cfg)
	}
	if !w.waitFinished(time.Duration(n/capRate+30) * time.Second) {
		t.Fatalf("not finished: %+v, provider accepted %d", w.status(), sim.Stats().Accepted)
	}
	var at []time.Duration
	for _, e := range sim.Events() {
		if e.Kind == mxsim.Accepted {
			at = append(at, e.At)
		}
	}
	peak, from := busiestSecond(at)
	stats := sim.Stats()
	mu.Lock()
	got := count(copies, n)
	mu.Unlock()
	span := at[len(at)-1] - at[0]
	t.Logf("provider limits: busiest second %d msg (from %v), mean %.1f msg/s over %v, peak connections %d (%d in a transaction), sessions %d; %s",
		peak, from.Round(time.Millisecond), float64(len(at)-1)/span.Seconds(), span.Round(time.Millisecond), stats.PeakConns, busiest, stats.Sessions, got)
	if peak > capSeen {
		t.Errorf("the provider saw %d messages in the second from %v, want at most %d", peak, from, capSeen)
	}
	// A connection slot is held for a session's whole life, in every
	// engine's pool too, and the engines together hold no more slots
	// than max_connections: the provider never sees more sessions open.
	if stats.PeakConns > capConns || busiest > capConns {
		t.Errorf("the provider saw %d sessions open and %d messages taken in at once, want at most max_connections %d",
			stats.PeakConns, busiest, capConns)
	}
	if got.lost != 0 || got.duplicates != 0 || got.strangers != 0 {
		t.Errorf("each recipient must arrive exactly once: %s", got)
	}
	if mean := float64(len(at)-1) / span.Seconds(); mean < 0.8*capRate {
		t.Errorf("mean %.1f msg/s: the throttle holds the engines far below the provider's %d/s", mean, capRate)
	}
}

// busiestSecond is the most acceptances in one of the one-second windows
// that follow the first second (windows counted from the first
// acceptance; the first may hold the burst), and where that window
// starts. at is in order.
func busiestSecond(at []time.Duration) (int, time.Duration) {
	per := map[int]int{}
	for _, a := range at {
		per[int((a-at[0])/time.Second)]++
	}
	best, from := 0, 0
	for sec, n := range per {
		if sec >= 1 && n > best {
			best, from = n, sec
		}
	}
	return best, at[0] + time.Duration(from)*time.Second
}
