package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// A job Redis says a running engine holds but none of its workers has —
// what a settle lost in a failover leaves behind: the promoted replica
// has the job pending for the engine again — is put back in line by the
// engine's sweep and delivered once, without a restart.
func TestSweepPutsBackAJobNoWorkerHolds(t *testing.T) {
	t.Parallel()
	const n = 4
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	srv := smtptest.Start(t, smtptest.Options{})
	if _, err := launch.Launch(ctx, rdb, ks, enginetest.Campaign(t, t.TempDir(), "c", n, "example.test"), launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = 1, 1, 1 // one a second
	enginetest.Start(t, cfg)
	began := time.Now()

	// Take one job of the campaign's line as the engine's own consumer,
	// behind its back.
	q := streams.New(rdb, ks, cfg.Delivery.Consumer)
	var stolen string
	for deadline := time.Now().Add(5 * time.Second); stolen == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		err := q.Lines(ctx, func(l streams.Line) error {
			res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streams.Group, Consumer: cfg.Delivery.Consumer,
				Streams: []string{q.LineStream(l), ">"}, Count: 1, Block: -1}).Result()
			if err == nil && len(res) == 1 && len(res[0].Messages) == 1 {
				raw, _ := res[0].Messages[0].Values["j"].(string)
				stolen = raw
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if stolen == "" {
		t.Fatal("no job left in line to take")
	}
	enginetest.WaitFinished(t, store.New(rdb, ks), "c", 30*time.Second)
	took := time.Since(began)
	seen := map[string]int{}
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			seen[to]++
		}
	}
	for i := range n {
		if to := fmt.Sprintf("user%05d@example.test", i); seen[to] != 1 {
			t.Errorf("%s received %d copies, want 1", to, seen[to])
		}
	}
	if !strings.Contains(stolen, "@example.test") {
		t.Errorf("taken entry %q is not a job of the campaign", stolen)
	}
	t.Logf("finished in %v (the sweep runs every 10 s)", took.Round(100*time.Millisecond))
}
