package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// clusterCtl runs campaignctl against a Redis Cluster's seeds under prefix.
type clusterCtl struct {
	t             *testing.T
	seeds, prefix string
}

func (c clusterCtl) must(args ...string) string {
	c.t.Helper()
	all := append([]string{"-redis-cluster", c.seeds, "-prefix", c.prefix}, args...)
	out, stderr, code := ctlEnv(c.t, nil, all...)
	if code != 0 {
		c.t.Fatalf("campaignctl %v: exit %d\n%s%s", all, code, out, stderr)
	}
	return out
}

func (c clusterCtl) status(id string) store.Status {
	c.t.Helper()
	var st store.Status
	if out := c.must("status", id, "--json"); json.Unmarshal([]byte(out), &st) != nil {
		c.t.Fatalf("status --json: %s", out)
	}
	return st
}

func (c clusterCtl) waitStatus(id string, within time.Duration, ok func(store.Status) bool) store.Status {
	c.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		if st := c.status(id); ok(st) || time.Now().After(deadline) {
			return st
		}
	}
}

// outcomes counts report's rows by outcome.
func (c clusterCtl) outcomes(id string) (rows int, by map[string]int64) {
	c.t.Helper()
	by = map[string]int64{}
	all := parseReport(c.t, c.must("report", id))
	for _, r := range all {
		by[r["outcome"]]++
	}
	return len(all), by
}

// Issue #12, acceptance 1 (campaignctl's part): on a 3-master cluster
// with two engines, campaignctl's status, report, pause, resume and cancel
// work as on one Redis.
func TestLifecycleOnACluster(t *testing.T) {
	t.Parallel()
	const n, m = 600, 300
	c := clustertest.Start(t)
	ctl := clusterCtl{t: t, seeds: strings.Join(c.Addrs(), ","), prefix: "life"}
	srv := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	for _, name := range []string{"e1", "e2"} {
		cfg := enginetest.Config(ctl.prefix, srv.Addr)
		cfg.Redis.Cluster = c.Addrs()
		cfg.Delivery.Consumer = name
		// 100 msg/s for both engines together (the key's rate is shared
		// through Redis): seconds of sending, time to pause.
		cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = 100, 100, 1
		enginetest.Start(t, cfg)
	}

	// Pause and resume.
	if out := ctl.must("launch", "-q", enginetest.Campaign(t, dir, "pr", n, "example.test")); !strings.Contains(out, "600 enqueued") {
		t.Fatalf("launch said %q", out)
	}
	waitCount(t, srv, 50, 20*time.Second)
	pausedAt := time.Now()
	ctl.must("pause", "pr")
	atPause := waitStill(t, srv, 1500*time.Millisecond, pausedAt.Add(5*time.Second))
	if atPause >= n {
		t.Fatalf("all %d delivered before the pause took effect", atPause)
	}
	if st := ctl.status("pr"); st.State != store.StatePaused || st.Delivered != int64(atPause) || st.Queued != int64(n-atPause) {
		t.Fatalf("status while paused %+v (receiver %d)", st, atPause)
	}
	if out := ctl.must("resume", "pr"); !strings.Contains(out, "resumed") {
		t.Fatalf("resume said %q", out)
	}
	if st := ctl.waitStatus("pr", 30*time.Second, finished); st.State != store.StateFinished || st.Delivered != n || st.Total != n {
		t.Fatalf("after resume: %+v", st)
	}
	if rows, by := ctl.outcomes("pr"); rows != n || by["delivered"] != n {
		t.Errorf("report of pr: %d rows %v, want %d delivered", rows, by, n)
	}
	eachOnce(t, srv, n, "example.test")

	// Cancel, of a campaign launched by -config with redis.wait_replicas:
	// each batch waits for its replica (WAIT, counted by the masters).
	before := srv.Count()
	cfg := enginetest.Write(t, filepath.Join(dir, "engine.yaml"), "redis:\n  cluster: ["+strings.Join(c.Addrs(), ", ")+"]\n  prefix: life\n  wait_replicas: 1\n")
	waits := func() (n int64) {
		for _, s := range c.Stats(t) {
			n += s.Calls["wait"]
		}
		return n
	}
	waited := waits()
	if out, stderr, code := ctlEnv(t, nil, "-config", cfg, "launch", "-q", enginetest.Campaign(t, dir, "cx", m, "cancel.test")); code != 0 {
		t.Fatalf("launch -config: exit %d\n%s%s", code, out, stderr)
	}
	if waited = waits() - waited; waited == 0 {
		t.Error("a launch with redis.wait_replicas 1 sent no WAIT")
	}
	waitCount(t, srv, before+30, 20*time.Second)
	if out := ctl.must("cancel", "cx", "--wait", "15s"); !strings.Contains(out, "nothing left queued") {
		t.Fatalf("cancel said %q", out)
	}
	st := ctl.status("cx")
	if st.State != store.StateCancelled || st.Queued != 0 || st.Cancelled == 0 || st.Delivered+st.Cancelled != m {
		t.Fatalf("status after cancel %+v", st)
	}
	time.Sleep(time.Second)
	if sent := int64(srv.Count() - before); sent != st.Delivered {
		t.Errorf("receiver got %d of cx after the cancel, status says %d delivered", sent, st.Delivered)
	}
	if rows, by := ctl.outcomes("cx"); rows != m || by["cancelled"] != st.Cancelled || by["delivered"] != st.Delivered {
		t.Errorf("report of cx: %d rows %v; status %+v", rows, by, st)
	}
	if out := ctl.must("list"); !strings.Contains(out, "pr") || !strings.Contains(out, "cx") {
		t.Errorf("list lacks a campaign:\n%s", out)
	}
}
