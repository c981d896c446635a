package limits

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/mxsim"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func run(t *testing.T, ks keyspace.Space, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), redistest.Client(t), ks, args, &out, &errb)
	return out.String(), errb.String(), err
}

func showJSON(t *testing.T, ks keyspace.Space) map[string]throttle.Status {
	t.Helper()
	out, _, err := run(t, ks, "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st []throttle.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	m := map[string]throttle.Status{}
	for _, s := range st {
		m[s.Provider] = s
	}
	return m
}

func TestUsage(t *testing.T) {
	ks := keyspace.Space(redistest.Prefix(t))
	out, _, err := run(t, ks, "--help")
	if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "limits set google --rate 20") {
		t.Fatalf("help: %v\n%s", err, out)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"set"}, {"set", "google"}, {"set", "google", "--rate", "-1"},
		{"reset"}, {"reset", "a", "b"}, {"show", "extra"}} {
		if _, _, err := run(t, ks, args...); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err %v, want ErrUsage", args, err)
		}
	}
	if _, errOut, err := run(t, ks, "set", "-h"); err != nil || !strings.Contains(errOut, "Examples:") {
		t.Errorf("set -h: %v %q", err, errOut)
	}
}

func TestSetShowReset(t *testing.T) {
	ks := keyspace.Space(redistest.Prefix(t))
	if out, _, err := run(t, ks, "show"); err != nil || !strings.HasPrefix(out, "PROVIDER") {
		t.Fatalf("empty show: %v %q", err, out)
	}
	out, errOut, err := run(t, ks, "set", "--rate", "5", "google", "--concurrency", "2", "--for", "1h")
	if err != nil || !strings.Contains(out, "google: pinned to rate 5/s, 2 connections for 1h0m0s") ||
		!strings.Contains(errOut, "no engine has used") {
		t.Fatalf("set: %v %q %q", err, out, errOut)
	}
	g, ok := showJSON(t, ks)["google"]
	if !ok || g.State != "pinned" || g.Rate != 5 || g.Connections != 2 || time.Until(g.PinnedUntil) < 59*time.Minute {
		t.Fatalf("after set: %+v", g)
	}
	out, _, _ = run(t, ks, "show")
	if !strings.Contains(out, "google") || !regexp.MustCompile(`pinned (59m|1h0m)`).MatchString(out) {
		t.Fatalf("table:\n%s", out)
	}
	if _, _, err := run(t, ks, "reset", "google"); err != nil {
		t.Fatal(err)
	}
	if g, ok := showJSON(t, ks)["google"]; ok {
		t.Fatalf("after reset: %+v", g)
	}
}

// TestSetReachesARunningEngine pins the rate of a provider a running
// engine is sending to, and measures at the receiver how soon the engine
// follows.
func TestSetReachesARunningEngine(t *testing.T) {
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	sim, err := mxsim.Listen("127.0.0.1:0", mxsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	path := enginetest.Campaign(t, t.TempDir(), "c", 3000, "bigmail.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, sim.Addr())
	cfg.Throttle.ProvidersFile = "../../../../pkg/throttle/testdata/providers.yaml" // bigmail.test: 100/s
	enginetest.Start(t, cfg)

	for sim.Stats().Accepted < 50 {
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := run(t, ks, "set", "bigmail", "--rate", "4"); err != nil {
		t.Fatal(err)
	}
	set := time.Since(sim.Start())
	// Find the first half second after which the receiver never sees
	// more than the pinned rate allows (4/s: 2 per half second, +1 for
	// a slot leased just before).
	var bins [14]int
	applied := -1
	for deadline := time.Now().Add(7 * time.Second); applied < 0 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		bins = [14]int{}
		for _, ev := range sim.Events() {
			if i := int((ev.At - set) / (500 * time.Millisecond)); ev.Kind == mxsim.Accepted && i >= 0 && i < len(bins) {
				bins[i]++
			}
		}
		done := int((time.Since(sim.Start()) - set) / (500 * time.Millisecond)) // complete bins
		for i := 0; i+3 <= min(done, len(bins)); i++ {
			if bins[i] <= 3 && bins[i+1] <= 3 && bins[i+2] <= 3 {
				applied = i
				break
			}
		}
	}
	t.Logf("accepted per half second after set: %v", bins)
	if applied < 0 || applied >= 10 {
		t.Fatalf("the engine did not keep to 4/s within 5 s of the set: %v", bins)
	}
	if bins[0]+bins[1]+bins[2]+bins[3] == 0 && applied == 0 {
		// Sending stopped rather than slowed: the pin would be a stop.
		t.Fatalf("nothing sent after the set: %v", bins[:12])
	}
	b := showJSON(t, ks)["bigmail"]
	if b.State != "pinned" || b.Rate != 4 || b.Engines != 1 || b.Delivered < 50 || b.Sessions < 1 {
		t.Fatalf("show: %+v", b)
	}
	// The table shows attempts in progress of the limit (CONNS) and the
	// sessions open (SESSIONS), as the JSON does.
	out, _, _ := run(t, ks, "show")
	row := regexp.MustCompile(`(?m)^bigmail\s+pinned\s+4\.0\s+\S+\s+(\d+)/(\d+)\s+(\d+)\s`).FindStringSubmatch(out)
	if row == nil || row[3] == "0" || !strings.Contains(out, "SESSIONS") {
		t.Fatalf("table (want bigmail's CONNS in use/limit and SESSIONS open):\n%s", out)
	}
}

// --source S shows only S's buckets (PROVIDER@S) and sets and resets
// S's state toward a provider, leaving the provider's own alone.
func TestSourceFlag(t *testing.T) {
	ks := keyspace.Space(redistest.Prefix(t))
	if _, _, err := run(t, ks, "set", "google", "--rate", "9", "--new"); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, ks, "set", "google", "--source", "ip2", "--rate", "5")
	if err != nil || !strings.Contains(out, "google@ip2: pinned to rate 5/s") {
		t.Fatalf("set --source: %v %q", err, out)
	}
	all := showJSON(t, ks)
	if all["google"].Rate != 9 || all["google@ip2"].Rate != 5 || all["google@ip2"].Source != "ip2" {
		t.Fatalf("show: %+v", all)
	}
	out, _, err = run(t, ks, "show", "--source", "ip2")
	if err != nil || !strings.Contains(out, "google@ip2") || strings.Contains(out, "google ") {
		t.Fatalf("show --source ip2: %v\n%s", err, out)
	}
	if _, _, err := run(t, ks, "reset", "google", "--source", "ip2"); err != nil {
		t.Fatal(err)
	}
	if all := showJSON(t, ks); all["google"].Rate != 9 || all["google@ip2"].Provider != "" {
		t.Fatalf("after reset --source: %+v", all)
	}
}
