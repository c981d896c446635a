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
// several ways in one run and prints, for each, the delivered msg/s and the
// redis-server CPU per delivered message on each master (INFO cpu, user +
// sys, which counts what commandstats does not: I/O, replication, the
// event loop):
//
//   - one-redis: one engine on one redis-server (no replica);
//   - cluster: two engines on the 3-master cluster (each with a replica);
//   - cluster-wait1: the same with redis.wait_replicas 1 (the cost of
//     WAIT after every settle, route, take and launch batch).
//
// Three more runs separate what the cluster adds: cluster-1engine (one
// engine: the second engine's polling and smaller batches), and
// cluster-noreplica, cluster-noreplica-1engine (three masters without
// replicas: the cost of feeding them).
//
// On two cores the total may not rise (the engines, six redis-servers and
// the receiver share them); what the sharding of issue #12 must bring is
// the CPU per message on each master falling to about a third (it falls
// to about half: see README, Redis Cluster). Each master's line also
// says its round trips (requests read) and the replication stream it fed
// its replica per message: the one-redis baseline has no replica.
func BenchmarkCluster20k(b *testing.B) {
	b.Run("one-redis", func(b *testing.B) { benchCluster(b, false, 0, 1, false) })
	b.Run("cluster", func(b *testing.B) { benchCluster(b, true, 0, 2, false) })
	b.Run("cluster-1engine", func(b *testing.B) { benchCluster(b, true, 0, 1, false) })
	b.Run("cluster-noreplica", func(b *testing.B) { benchCluster(b, true, 0, 2, true) })
	b.Run("cluster-noreplica-1engine", func(b *testing.B) { benchCluster(b, true, 0, 1, true) })
	b.Run("cluster-wait1", func(b *testing.B) { benchCluster(b, true, 1, 2, false) })
}

// masterLoad is one master's CPU time, reads of requests (round trips)
// and replication stream written so far (INFO cpu, stats, replication).
type masterLoad struct {
	addr  string
	cpu   time.Duration
	reads int64
	repl  int64 // master_repl_offset: bytes of the stream fed to its replica
}

func benchCluster(b *testing.B, cluster bool, wait, nEngines int, noReplicas bool) {
	const n = 20000
	for range b.N {
		ctx := context.Background()
		srv := smtptest.Start(b, smtptest.Options{Discard: true})
		path := enginetest.Campaign(b, b.TempDir(), "bench", n, "example.test")
		var rdb redis.UniversalClient
		var c *clustertest.Cluster
		prefix, engines := redistest.Prefix(b), 1
		if cluster {
			c = clustertest.StartWith(b, clustertest.Options{NoReplicas: noReplicas})
			rdb, engines = c.Client(b), nEngines
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
		var reads, repl int64
		for i := range after {
			cpu := after[i].cpu - before[i].cpu
			r, rb := after[i].reads-before[i].reads, after[i].repl-before[i].repl
			per = append(per, fmt.Sprintf("%.1f µs (%.3f round trips, %.0f B to its replica)", perMsg(cpu, n), float64(r)/n, float64(rb)/n))
			most, total, reads, repl = max(most, cpu), total+cpu, reads+r, repl+rb
		}
		b.Logf("%d engine(s) on %d master(s), wait_replicas %d: %.0f delivered msg/s; redis CPU per message on each master: %s; all masters %.1f µs",
			engines, len(after), wait, n/took.Seconds(), strings.Join(per, ", "), perMsg(total, n))
		b.ReportMetric(n/took.Seconds(), "delivered-msg/s")
		b.ReportMetric(perMsg(most, n), "redis-cpu-µs/msg/busiest-master")
		b.ReportMetric(perMsg(total, n), "redis-cpu-µs/msg/all-masters")
		b.ReportMetric(float64(reads)/n, "redis-reads/msg/all-masters")
		b.ReportMetric(float64(repl)/n, "repl-bytes/msg/all-masters")
	}
}

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// loads reads every master's figures: the cluster's masters, or the
// package's one redis-server when c is nil.
func loads(b *testing.B, c *clustertest.Cluster) []masterLoad {
	addrs := []string{redistest.Addr()}
	if c != nil {
		addrs = addrs[:0]
		for _, m := range c.Masters(b) {
			addrs = append(addrs, m.Addr)
		}
	}
	var out []masterLoad
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		info, err := rdb.InfoMap(context.Background(), "cpu", "stats", "replication").Result()
		_ = rdb.Close()
		if err != nil {
			b.Fatal(err)
		}
		secs := func(k string) time.Duration {
			f, _ := strconv.ParseFloat(info["CPU"][k], 64)
			return time.Duration(f * float64(time.Second))
		}
		reads, _ := strconv.ParseInt(info["Stats"]["total_reads_processed"], 10, 64)
		repl, _ := strconv.ParseInt(info["Replication"]["master_repl_offset"], 10, 64)
		out = append(out, masterLoad{addr: addr, cpu: secs("used_cpu_user") + secs("used_cpu_sys"), reads: reads, repl: repl})
	}
	return out
}
