package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// campaignctl reaches a Redis Cluster by -redis-cluster, REDIS_CLUSTER or
// the -config file's redis.cluster, and what it writes there is read back
// through each of the three.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := clustertest.Start(t)
	seeds := strings.Join(c.Addrs()[:2], ",")
	cfg := filepath.Join(t.TempDir(), "engine.yaml")
	if err := os.WriteFile(cfg, []byte("redis:\n  cluster: ["+strings.Join(c.Addrs(), ", ")+"]\n  prefix: onc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ways := map[string]struct {
		env  []string
		args []string
	}{
		"-redis-cluster":       {nil, []string{"-redis-cluster", seeds, "-prefix", "onc"}},
		"-redis-cluster after": {nil, []string{"-prefix=onc"}}, // the flag after the command, below
		"REDIS_CLUSTER":        {[]string{"REDIS_CLUSTER=" + seeds}, []string{"-prefix", "onc"}},
		"-config":              {nil, []string{"-config", cfg}},
	}
	run := func(name string, args ...string) string {
		t.Helper()
		w := ways[name]
		all := append(append([]string{}, w.args...), args...)
		if name == "-redis-cluster after" {
			all = append(all, "-redis-cluster="+seeds)
		}
		out, stderr, code := ctlEnv(t, w.env, all...)
		if code != 0 {
			t.Fatalf("%s: campaignctl %v: exit %d\n%s%s", name, all, code, out, stderr)
		}
		return out
	}
	run("-redis-cluster", "limits", "set", "google", "--rate", "7")
	for name := range ways {
		if out := run(name, "limits", "show"); !strings.Contains(out, "google") {
			t.Errorf("%s: limits show lacks the pinned provider:\n%s", name, out)
		}
	}
	// Nothing of it went to a prefix not asked for.
	if out := run("-redis-cluster", "limits", "show", "--json"); !strings.Contains(out, "google") {
		t.Errorf("limits show --json:\n%s", out)
	}
}

// Saying two Redises, or a cluster node by URL, is refused with a reason.
func TestRedisClusterMistakes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  []string
		args []string
		code int
		say  string
	}{
		{nil, []string{"-redis", redistest.URL(), "-redis-cluster", "127.0.0.1:1", "list"}, 2,
			"-redis and -redis-cluster both given"},
		{nil, []string{"-redis-cluster", "127.0.0.1:1,nohostport", "list"}, 2,
			`campaignctl list: -redis-cluster: "nohostport" is not host:port`},
		{[]string{"REDIS_URL=" + redistest.URL(), "REDIS_CLUSTER=127.0.0.1:1"}, []string{"list"}, 2,
			"REDIS_URL and REDIS_CLUSTER are both set"},
		{nil, []string{"-redis-cluster", redistest.Addr(), "list"}, 1,
			"redis cluster " + redistest.Addr() + ": "},
	} {
		out, stderr, code := ctlEnv(t, c.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.say) || out != "" {
			t.Errorf("%v %v: exit %d (want %d), stdout %q, stderr %q (want %q)", c.env, c.args, code, c.code, out, stderr, c.say)
		}
	}
}

func TestRedisURLOfAClusterNode(t *testing.T) {
	t.Parallel()
	c := clustertest.Start(t)
	_, stderr, code := ctlEnv(t, nil, "-redis", "redis://"+c.Addrs()[0], "list")
	if want := "a node of a Redis Cluster: name the cluster's nodes"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

// A campaign launched with -redis-cluster is delivered by an engine on the
// cluster, once per recipient, and its status read back from there.
func TestCampaignOnACluster(t *testing.T) {
	t.Parallel()
	const n = 200
	c := clustertest.Start(t)
	seeds := strings.Join(c.Addrs(), ",")
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "onc", n, "example.test")
	if out, stderr, code := ctlEnv(t, nil, "-redis-cluster", seeds, "launch", "-q", path); code != 0 {
		t.Fatalf("launch: exit %d\n%s%s", code, out, stderr)
	}
	cfg := enginetest.Config("sluice", srv.Addr)
	cfg.Redis.Cluster = c.Addrs()
	enginetest.Start(t, cfg)
	var st store.Status
	for deadline := time.Now().Add(60 * time.Second); st.State != store.StateFinished && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		out, stderr, code := ctlEnv(t, []string{"REDIS_CLUSTER=" + seeds}, "status", "onc", "--json")
		if code != 0 {
			t.Fatalf("status: exit %d\n%s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
	}
	if st.State != store.StateFinished || st.Delivered != n || st.Queued != 0 {
		t.Fatalf("status %+v, want finished with %d delivered", st, n)
	}
	eachOnce(t, srv, n, "example.test")
}
