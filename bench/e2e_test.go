// Package bench holds the end-to-end benchmarks `make bench` prints: real
// redis-server, real engine, real SMTP to an in-process sink on loopback.
package bench

import (
	"context"
	"fmt"
	"os"
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
// and without DKIM signing (RSA-2048).
func BenchmarkCampaign20k(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchCampaign(b, false) })
	b.Run("dkim-rsa2048", func(b *testing.B) { benchCampaign(b, true) })
}

func benchCampaign(b *testing.B, signed bool) {
	const n = 20000
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
		calls0, usec0 := redisCost(b, rdb)
		t1 := time.Now()
		enginetest.Start(b, cfg)
		st := store.New(rdb, ks)
		for {
			s, err := st.Status(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if s.State == store.StateFinished {
				if s.Delivered != n || srv.Count() != n {
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
		calls1, usec1 := redisCost(b, rdb)
		if os.Getenv("BENCH_CMDSTATS") != "" {
			info, _ := rdb.Info(ctx, "commandstats").Result()
			b.Log(info)
		}
		b.ReportMetric(float64(calls1-calls0)/n, "redis-cmds/msg")
		b.ReportMetric(float64(usec1-usec0)/n, "redis-µs/msg")
		b.ReportMetric(float64(n)/launchDur.Seconds(), "launch-rows/s")
		b.ReportMetric(float64(n)/sendDur.Seconds(), "delivered-msg/s")
		b.ReportMetric(float64(srv.Conns()), "smtp-sessions")
	}
}

// redisCost sums redis-server's INFO commandstats: commands executed and
// the CPU time spent in them (µs). Scripts count as one command (EVALSHA)
// with the time of everything they do.
func redisCost(b *testing.B, rdb *redis.Client) (calls, usec int64) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		var c, u int64
		fmt.Sscanf(rest, "%d,usec=%d", &c, &u)
		calls += c
		usec += u
	}
	return calls, usec
}
