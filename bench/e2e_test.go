// Package bench holds the end-to-end benchmarks `make bench` prints: real
// redis-server, real engine, real SMTP to an in-process sink on loopback.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// BenchmarkCampaign20k launches a 20,000-recipient campaign and delivers it
// to a local sink, reporting launch rate and end-to-end delivery rate, with
// and without DKIM signing (RSA-2048). x-raw is the delivery rate over the raw
// smtp-source → smtp-sink rate of the same run; the receiver here is
// go-smtp in this very process, heavier than smtp-sink on the same two
// cores (CampaignCPU1KiB/smtp-sink is the like-for-like comparison).
func BenchmarkCampaign20k(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchCampaign(b, false) })
	b.Run("dkim-rsa2048", func(b *testing.B) { benchCampaign(b, true) })
}

func benchCampaign(b *testing.B, signed bool) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && v > 0 {
		n = v // a smaller run, for redis-server under callgrind
	}
	raw := RawSinkRate(b, 20000) // the wire's limit in this run (issue 17 reads every rate against it)
	for i := 0; i < b.N; i++ {
		prefix := redistest.Prefix(b)
		ks := keyspace.Space(prefix)
		rdb := redistest.Client(b)
		srv := smtptest.Start(b, smtptest.Options{})
		path := enginetest.Campaign(b, b.TempDir(), "bench", n, "example.test")
		ctx := context.Background()

		t0 := time.Now()
		res, err := launch.Launch(ctx, rdb, ks, path, launch.Options{})
		if err != nil || res.Enqueued != n {
			b.Fatalf("launch: %+v %v", res, err)
		}
		launchDur := time.Since(t0)

		cfg := enginetest.Config(prefix, srv.Addr)
		cfg.Delivery.Workers = 64
		if signed {
			key, _ := enginetest.DKIMKey(b, b.TempDir(), "sluice.test")
			cfg.DKIM = []config.DKIM{key}
		}
		if os.Getenv("BENCH_CALLGRIND") != "" {
			// redis-server runs under valgrind --tool=callgrind: count
			// its instructions from here (the launch left out).
			// Only this redis-server's (others' runs may be going on).
			if out, err := exec.Command("callgrind_control", "-z", redisPID(b, rdb)).CombinedOutput(); err != nil {
				b.Fatalf("callgrind_control -z: %v %s", err, out)
			}
		}
		c0 := redisCost(b, rdb)
		t1 := time.Now()
		enginetest.Start(b, cfg)
		st := store.New(rdb, ks)
		if os.Getenv("BENCH_STATUSPOLL") == "" {
			// Watch the sink first, as BenchmarkCluster20k does: the
			// campaign's status, read every 20 ms from the start, is the
			// bench's own load on Redis (a round trip and 12 commands a
			// read), counted in the figures per message. BENCH_STATUSPOLL=1
			// reads it from the start, as before.
			for srv.Count() < n && time.Since(t1) < 5*time.Minute {
				time.Sleep(5 * time.Millisecond)
			}
		}
		for {
			s, err := st.Status(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if s.State == store.StateFinished {
				if s.Delivered != int64(n) || srv.Count() != n {
					b.Fatalf("delivered %d, sink got %d; want %d", s.Delivered, srv.Count(), n)
				}
				break
			}
			if time.Since(t1) > 5*time.Minute {
				b.Fatalf("not finished after 5 minutes: %+v", s)
			}
			time.Sleep(20 * time.Millisecond)
		}
		sendDur := time.Since(t1)
		c1 := redisCost(b, rdb)
		if os.Getenv("BENCH_CALLGRIND") != "" {
			// Dump the counts of the delivery now: redis-server is killed
			// at the end, which writes none.
			if out, err := exec.Command("callgrind_control", "-d", redisPID(b, rdb)).CombinedOutput(); err != nil {
				b.Fatalf("callgrind_control -d: %v %s", err, out)
			}
		}
		if os.Getenv("BENCH_CMDSTATS") != "" {
			// Since redis-server started: the launch's commands too.
			info, _ := rdb.Info(ctx, "commandstats").Result()
			fmt.Fprintln(os.Stderr, info)
		}
		b.ReportMetric(float64(c1.calls-c0.calls)/float64(n), "redis-cmds/msg")
		b.ReportMetric(float64(c1.reads-c0.reads)/float64(n), "redis-reads/msg")
		b.ReportMetric(float64(c1.usec-c0.usec)/float64(n), "redis-cpu-µs/msg")
		b.ReportMetric(float64(n)/launchDur.Seconds(), "launch-rows/s")
		b.ReportMetric(float64(n)/sendDur.Seconds(), "delivered-msg/s")
		ReportRawRatio(b, float64(n)/sendDur.Seconds(), raw, "x-raw")
		b.ReportMetric(float64(srv.Conns()), "smtp-sessions")
	}
}

// redisPID is redis-server's process id (INFO server), for
// callgrind_control.
func redisPID(b *testing.B, rdb *redis.Client) string {
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return v
		}
	}
	b.Fatal("INFO server: no process_id")
	return ""
}

// cost is what redis-server has done so far, by its own figures.
type cost struct {
	calls int64 // commands processed, a script's own commands as well as its EVALSHA
	reads int64 // reads of client requests (a pipeline is usually one): round trips
	usec  int64 // CPU time used, user + sys
}

// redisCost reads redis-server's own figures (INFO stats and cpu):
// total_commands_processed, which counts the commands a script runs as
// well as the EVALSHA; total_reads_processed, the socket reads that
// brought requests (about one per round trip, however many commands it
// carries); and used_cpu_user + used_cpu_sys. commandstats' usec would
// count a script's inner commands twice.
func redisCost(b *testing.B, rdb *redis.Client) cost {
	info, err := rdb.Info(context.Background(), "stats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var c cost
	var cpu float64
	for _, line := range strings.Split(info, "\r\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch name {
		case "total_commands_processed":
			c.calls, _ = strconv.ParseInt(val, 10, 64)
		case "total_reads_processed":
			c.reads, _ = strconv.ParseInt(val, 10, 64)
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(val, 64)
			cpu += f
		}
	}
	c.usec = int64(cpu * 1e6)
	return c
}
