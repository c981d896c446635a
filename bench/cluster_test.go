package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// BenchmarkCluster20k (issue #12, acceptance 3) delivers 20,000 recipients
// three ways in one run and prints, for each, the delivered msg/s and the
// redis-server CPU per delivered message on each master (INFO cpu, user +
// sys, which counts what commandstats does not: I/O, replication, the
// event loop):
//
//   - one-redis: one engine on one redis-server (no replica);
//   - cluster: two engines on the 3-master cluster (each with a replica);
//   - cluster-wait1: the same with redis.wait_replicas 1 (the cost of
//     WAIT after every settle, route, take and launch batch).
//
// On two cores the total may not rise (the engines, six redis-servers and
// the receiver share them); what the sharding of issue #12 must bring is
// the CPU per message on each master falling to about a third (it falls
// to about half: see README, Redis Cluster).
func BenchmarkCluster20k(b *testing.B) {
	b.Run("one-redis", func(b *testing.B) { benchCluster(b, false, 0) })
	b.Run("cluster", func(b *testing.B) { benchCluster(b, true, 0) })
	b.Run("cluster-wait1", func(b *testing.B) { benchCluster(b, true, 1) })
}

// masterLoad is one master's CPU time so far.
type masterLoad struct {
	addr string
	cpu  time.Duration
}

func benchCluster(b *testing.B, cluster bool, wait int) {
	const n = 20000
	for range b.N {
		ctx := context.Background()
		srv := smtptest.Start(b, smtptest.Options{Discard: true})
		path := enginetest.Campaign(b, b.TempDir(), "bench", n, "example.test")
		var rdb redis.UniversalClient
		var c *clustertest.Cluster
		prefix, engines := redistest.Prefix(b), 1
		if cluster {
			c = clustertest.Start(b)
			rdb, engines = c.Client(b), 2
		} else {
			rdb = redistest.Client(b)
		}
		ks := keyspace.Space(prefix)
		before := loads(b, c) // the launch's work counts too
		if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{WaitReplicas: wait}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := range engines {
			cfg := enginetest.Config(prefix, srv.Addr)
			cfg.Delivery.Workers = 64
			cfg.Delivery.Consumer = "bench" + strconv.Itoa(i+1)
			if cluster {
				cfg.Redis.Cluster = c.Addrs()
				cfg.Redis.WaitReplicas = wait
			}
			enginetest.Start(b, cfg)
		}
		s := enginetest.WaitFinished(b, store.New(rdb, ks), "bench", 5*time.Minute)
		if s.Delivered != n || srv.Count() != n {
			b.Fatalf("delivered %d, sink got %d; want %d", s.Delivered, srv.Count(), n)
		}
		took := time.Since(start)
		after := loads(b, c)
		var per []string
		var most, total time.Duration
		for i := range after {
			cpu := after[i].cpu - before[i].cpu
			per = append(per, fmt.Sprintf("%.1f µs", perMsg(cpu, n)))
			most, total = max(most, cpu), total+cpu
		}
		b.Logf("%d engine(s) on %d master(s), wait_replicas %d: %.0f delivered msg/s; redis CPU per message on each master: %s; all masters %.1f µs",
			engines, len(after), wait, n/took.Seconds(), strings.Join(per, ", "), perMsg(total, n))
		b.ReportMetric(n/took.Seconds(), "delivered-msg/s")
		b.ReportMetric(perMsg(most, n), "redis-cpu-µs/msg/busiest-master")
		b.ReportMetric(perMsg(total, n), "redis-cpu-µs/msg/all-masters")
	}
}

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// loads reads every master's CPU time: the cluster's masters, or
// the package's one redis-server when c is nil.
func loads(b *testing.B, c *clustertest.Cluster) []masterLoad {
	if c != nil {
		var out []masterLoad
		for _, s := range c.Stats(b) {
			out = append(out, masterLoad{addr: s.Addr, cpu: s.CPU})
		}
		return out
	}
	rdb := redistest.Client(b)
	info, err := rdb.InfoMap(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	secs := func(k string) time.Duration {
		f, _ := strconv.ParseFloat(info["CPU"][k], 64)
		return time.Duration(f * float64(time.Second))
	}
	return []masterLoad{{addr: redistest.Addr(), cpu: secs("used_cpu_user") + secs("used_cpu_sys")}}
}
