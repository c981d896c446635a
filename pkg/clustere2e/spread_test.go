package clustere2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
)

// Each master's share of the deployment's keys and commands must lie in
// [minShare, maxShare] (issue #12, acceptance 1).
const minShare, maxShare = 0.20, 0.45

// TestSpread (acceptance 1): a 20,000-recipient campaign through two
// engines on the three-master cluster arrives exactly once per recipient,
// and the work is spread over the masters.
func TestSpread(t *testing.T) {
	t.Parallel()
	n := 20000
	if testing.Short() {
		n = 2000
	}
	w := newWorld(t, "spread", n)
	before := w.c.Stats(t)
	began := time.Now()
	w.launch(launch.Options{})
	launched := time.Since(began)
	for _, name := range []string{"e1", "e2"} {
		enginetest.Start(t, w.config(name, w.rx.Addr))
	}
	if !w.waitFinished(90 * time.Second) {
		t.Fatalf("campaign not finished after 90s: %+v, receiver has %d", w.status(), w.rx.total())
	}
	took := time.Since(began)
	after := w.c.Stats(t)
	st := w.status()
	got := count(w.rx.copies(), n)
	t.Logf("spread: %d recipients, launch %v, finished in %v (%.0f msg/s incl. launch); %s",
		n, launched.Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds(), got)
	if got.lost != 0 || got.duplicates != 0 || got.strangers != 0 {
		t.Errorf("each recipient must arrive exactly once: %s", got)
	}
	if st.Delivered != int64(n) || st.Queued != 0 {
		t.Errorf("status %+v, want %d delivered and none queued", st, n)
	}

	// Keys: the deployment's, by its hash tags ({spread}, {spread.N.S}
	// and {spread~...}).
	keys := w.c.Keys(t, "{spread[.}~]*")
	cmds := make([]int64, len(after))
	for i := range after {
		cmds[i] = after[i].Since(before[i]).Commands
	}
	// The sharding's work: without it every key of a deployment sits
	// under one hash tag, on one master, and one master has 100%.
	spread(t, "keys", keys)
	spread(t, "commands", cmds)
}

// spread reports what share of the total each master holds and fails the
// test when one lies outside [minShare, maxShare].
func spread(t *testing.T, what string, per []int64) {
	t.Helper()
	var total int64
	for _, v := range per {
		total += v
	}
	if total == 0 {
		t.Errorf("%s per master: none at all", what)
		return
	}
	var parts []string
	bad := false
	for i, v := range per {
		share := float64(v) / float64(total)
		parts = append(parts, fmt.Sprintf("master %d: %d (%.1f%%)", i, v, 100*share))
		bad = bad || share < minShare || share > maxShare
	}
	msg := fmt.Sprintf("%s per master: %s", what, strings.Join(parts, ", "))
	if bad {
		t.Errorf("%s — each must hold %.0f–%.0f%% (the shards of issue #12 spread them)", msg, 100*minShare, 100*maxShare)
		return
	}
	t.Log(msg)
}
