package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

const sourcesConfig = `hostname: mta.sluice.test
sources:
  - {name: tx1, address: 127.0.0.2, ehlo: tx1.sluice.test}
  - name: mk1
    address: 127.0.0.3
    ehlo: mk1.sluice.test
    warmup: {schedule: [100, 200, 400], start: 2026-01-15}
pools:
  - {name: transactional, sources: [{source: tx1}]}
  - {name: marketing, sources: [{source: mk1}]}
lanes:
  transactional: {pool: transactional}
  marketing: {pool: marketing}
`

// campaignctl sources shows each source of -config with, per provider a
// ramping source has sent to, today's volume against the day's cap.
func TestSources(t *testing.T) {
	prefix := redistest.Prefix(t)
	path := filepath.Join(t.TempDir(), "engine.yaml")
	if err := os.WriteFile(path, []byte(sourcesConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// What engines would have done today: mk1 took 7 units toward Google
	// (the hour allows ceil(100 × 4 ÷ 24) = 17).
	w := warmup.New(redistest.Client(t), keyspace.Space(prefix), warmup.Plans(cfg))
	now := time.Now()
	for range 7 {
		if ok, _, err := w.Allow(context.Background(), "mk1", "google", now); !ok || err != nil {
			t.Fatalf("allow: %v %v", ok, err)
		}
		_ = w.Record(context.Background(), "mk1", "google", outcome.Outcome{Status: outcome.Delivered}, now)
	}
	// And the throttle's per-(source, provider) buckets: mk1 → google
	// pinned at 20/s, tx1 → yahoo at 7/s; the default route's google
	// bucket (no source) is nobody's here.
	rdb, ks := redistest.Client(t), keyspace.Space(prefix)
	// news.sluice.test was slowed toward google: its own state.
	dom := throttle.DomainBucket("google", "news.sluice.test")
	for bucket, r := range map[string]float64{"google@mk1": 20, "yahoo@tx1": 7, "google": 99, dom: 2} {
		if err := throttle.Set(context.Background(), rdb, ks, bucket, r, 3, 0); err != nil {
			t.Fatal(err)
		}
	}
	// mk1's totals: 200 delivered and 3 hard bounces at SMTP time, then
	// a complaint and a bounce by mail (delivered → bounced).
	tot := warmup.NewTotals(rdb, ks, nil)
	for i := range 203 {
		out := outcome.Outcome{Status: outcome.Delivered}
		if i >= 200 {
			out = outcome.Outcome{Status: outcome.Bounced, Scope: outcome.ScopeRecipient}
		}
		tot.Note("mk1", out)
	}
	if err := tot.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Complaint(context.Background(), "mk1", "google", now); err != nil {
		t.Fatal(err)
	}
	if err := w.Bounced(context.Background(), "mk1", "google", now); err != nil {
		t.Fatal(err)
	}

	out := mustCtl(t, prefix, "-config", path, "sources", "--json")
	var got []struct {
		Name, Address, EHLO string
		Pools               []string
		Ramping             bool
		Days                int
		Providers           []map[string]any
		Totals              warmup.SourceTotals
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 2 || got[0].Name != "tx1" || got[0].Address != "127.0.0.2" || got[0].EHLO != "tx1.sluice.test" ||
		got[0].Ramping || len(got[0].Providers) != 1 || got[0].Pools[0] != "transactional" {
		t.Fatalf("tx1: %+v", got)
	}
	mk := got[1]
	if mk.Name != "mk1" || !mk.Ramping || mk.Days != 3 || mk.Pools[0] != "marketing" || len(mk.Providers) != 1 {
		t.Fatalf("mk1: %+v", mk)
	}
	if want := (warmup.SourceTotals{Delivered: 199, Bounced: 4, Complaints: 1, ComplaintRate: 1.0 / 199, BounceRate: 4.0 / 199}); mk.Totals != want {
		t.Errorf("mk1's totals %+v, want %+v", mk.Totals, want)
	}
	p := mk.Providers[0]
	if p["provider"] != "google" || p["day"] != 1.0 || p["sent"] != 7.0 || p["cap"] != 100.0 || p["hourly_cap"] != 17.0 ||
		p["rate"] != 20.0 || p["connections"] != 3.0 || p["state"] != "pinned" {
		t.Fatalf("mk1 → google: %v", p)
	}
	if p := got[0].Providers[0]; p["provider"] != "yahoo" || p["rate"] != 7.0 || p["state"] != "pinned" {
		t.Fatalf("tx1 → yahoo: %v", p)
	}

	text := mustCtl(t, prefix, "-config", path, "sources")
	for _, want := range []string{"SOURCE", "RATE", "tx1", "127.0.0.2", "warm", "mk1", "google", "1/3", "7/100", "20.0", "yahoo", "7.0", "pinned",
		"COMPLAINT RATE", "199", "2.01%", "0.503%", "SENDING DOMAIN", "news.sluice.test"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}

	lim := mustCtl(t, prefix, "limits", "show", "--domain", "News.Sluice.test")
	if !strings.Contains(lim, dom) || strings.Contains(lim, "google@mk1") {
		t.Errorf("limits show --domain:\n%s", lim)
	}
	mustCtl(t, prefix, "limits", "reset", "google", "--domain", "news.sluice.test")

	help, _, code := ctl(t, prefix, "sources", "-h")
	if code != 0 || !strings.Contains(help, "suspended until") {
		t.Errorf("sources -h: exit %d\n%s", code, help)
	}
	if _, stderr, code := ctl(t, prefix, "sources", "extra"); code != 2 || !strings.Contains(stderr, "no arguments") {
		t.Errorf("sources extra: exit %d %s", code, stderr)
	}
}

// launch with -config refuses a campaign whose pool: it does not define,
// with a "did you mean".
func TestLaunchChecksThePool(t *testing.T) {
	prefix := redistest.Prefix(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "engine.yaml")
	if err := os.WriteFile(cfgPath, []byte(sourcesConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "list.csv"), []byte("email\na@example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	camp := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(camp, []byte("id: pooled\nfrom: news@sluice.test\nsubject: Hi\ntext: Hello\nrecipients: list.csv\npool: marketting\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := ctl(t, prefix, "-config", cfgPath, "launch", camp)
	if code != 1 || !strings.Contains(stderr, `pool: unknown pool "marketting" (did you mean "marketing"?)`) {
		t.Fatalf("launch: exit %d\n%s", code, stderr)
	}
}
