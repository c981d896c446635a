package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// A launch's packs hold jobs that need a step of their own: the campaign
// is paused before any engine runs (every job is parked), and some
// addresses are suppressed after the launch. Each such job leaves its pack
// on its own and gets its step; after the resume every other recipient
// gets exactly one message, the suppressed none, and the lane is empty.
func TestPackedJobsGetTheirOwnSteps(t *testing.T) {
	const n = 600 // ~50 a shard: packs of that many
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { log.note(to); return nil }})
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "packs", n, "example.test")
	if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	q := streams.New(rdb, ks, "probe")
	if depth, _, _ := q.Depth(ctx, streams.Marketing); depth != n {
		t.Fatalf("lane depth %d, want %d jobs", depth, n)
	}
	if entries := laneEntries(t, q); entries >= n/10 {
		t.Fatalf("%d lane entries for %d jobs: not packed", entries, n)
	}
	sup := suppression.New(rdb, ks)
	for i := 0; i < n; i += 30 {
		if err := sup.Add(ctx, suppression.Entry{Address: fmt.Sprintf("user%05d@example.test", i), Reason: suppression.Manual, Source: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := control.Pause(ctx, rdb, ks, "packs"); err != nil {
		t.Fatal(err)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	deadline := time.Now().Add(10 * time.Second)
	for {
		depth, _, _ := q.Depth(ctx, streams.Marketing)
		if depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still in the lane of a paused campaign", depth)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Count() != 0 {
		t.Fatalf("%d messages sent while paused", srv.Count())
	}
	if _, err := control.Resume(ctx, rdb, ks, "packs"); err != nil {
		t.Fatal(err)
	}
	s := enginetest.WaitFinished(t, store.New(rdb, ks), "packs", 30*time.Second)
	if s.Delivered != n-n/30 || s.Suppressed != n/30 || srv.Count() != n-n/30 {
		t.Fatalf("status %+v, %d messages", s, srv.Count())
	}
	for i := range n {
		want := 1
		if i%30 == 0 {
			want = 0
		}
		if got := log.count(fmt.Sprintf("user%05d@example.test", i)); got != want {
			t.Fatalf("user%05d: %d RCPTs, want %d", i, got, want)
		}
	}
}

// laneEntries counts the marketing lane's entries not yet let go of.
func laneEntries(t *testing.T, q *streams.Queue) int {
	t.Helper()
	n := 0
	for shard := range keyspace.Shards {
		got, err := redistest.Client(t).XLen(context.Background(), q.Stream(shard, streams.Marketing)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += int(got)
	}
	return n
}

// A campaign's lines hold packs of jobs (streams.LinePack), and runs
// stop short of a pack's end: a slow receiver (every 7th recipient takes
// 50 ms, so the rest of its pack goes back as jobs of their own), then a
// pause mid-run (a job of a pack to park goes back with its pack's
// rest). After the resume every recipient has exactly one message.
func TestLinePackRunsStopShortAndLoseNothing(t *testing.T) {
	const n = 600
	var log rcptLog
	srv := slowReceiver(t, &log, 7, 50*time.Millisecond)
	ctx := context.Background()
	rdb, ks, cfg := launchFast(t, "lp", n, srv.Addr, 3)
	enginetest.Start(t, cfg)
	for deadline := time.Now().Add(20 * time.Second); srv.Count() < n/3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in 20 s", srv.Count())
		}
	}
	if err := control.Pause(ctx, rdb, ks, "lp"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	paused := srv.Count()
	time.Sleep(500 * time.Millisecond)
	if srv.Count() != paused || paused == n {
		t.Fatalf("%d messages while paused (%d at the pause's settling), of %d", srv.Count(), paused, n)
	}
	if _, err := control.Resume(ctx, rdb, ks, "lp"); err != nil {
		t.Fatal(err)
	}
	s := enginetest.WaitFinished(t, store.New(rdb, ks), "lp", 60*time.Second)
	if s.Delivered != n || srv.Count() != n {
		t.Fatalf("status %+v, %d messages", s, srv.Count())
	}
	for i := range n {
		if got := log.count(fmt.Sprintf("user%05d@example.test", i)); got != 1 {
			t.Fatalf("user%05d: %d RCPTs, want 1", i, got)
		}
	}
}

// An engine routes a campaign's jobs into lines as packs only while
// every engine alive reads them: with an engine of an older version
// beating (no "linepacks" in what it reads), every line entry holds one
// job.
func TestLinePacksOnlyWhenEveryEngineReadsThem(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old-engine-%v", old), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{Discard: true})
			ctx := context.Background()
			prefix := redistest.Prefix(t)
			ks := keyspace.Space(prefix)
			rdb := redistest.Client(t)
			q := streams.New(rdb, ks, "probe")
			if old {
				now, _ := rdb.Time(ctx).Result()
				rdb.HSet(ctx, q.Engines(), "old", now.UnixMilli())
				rdb.HSet(ctx, q.Reads(), "old", streams.ReadsPacks+" "+streams.ReadsRuns)
			}
			const n = 200
			path := enginetest.Campaign(t, t.TempDir(), "gate", n, "example.test")
			if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
				t.Fatal(err)
			}
			cfg := enginetest.Config(prefix, srv.Addr)
			cfg.Throttle.Providers = map[string]config.Limits{ // jobs wait in their lines
				"route:" + srv.Addr: {StartRate: 1, MinRate: 1, MaxRate: 1, Burst: 1, MaxConnections: 1},
			}
			enginetest.Start(t, cfg)
			var packs, singles, jobs int
			for deadline := time.Now().Add(10 * time.Second); jobs+srv.Count() < n; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d jobs in lines, %d sent, of %d", jobs, srv.Count(), n)
				}
				packs, singles, jobs = 0, 0, 0
				ls, err := q.CampaignLines(ctx, "gate")
				if err != nil {
					t.Fatal(err)
				}
				for _, ld := range ls {
					for shard := range keyspace.Shards {
						l := ld.Line
						l.Shard = shard
						es, _ := rdb.XRange(ctx, q.LineStream(l), "-", "+").Result()
						for _, e := range es {
							if p, ok := e.Values[streams.PackField].(string); ok {
								packs, jobs = packs+1, jobs+strings.Count(p, "\n")
							} else {
								singles, jobs = singles+1, jobs+1
							}
						}
					}
				}
			}
			t.Logf("line entries: %d packs, %d single jobs; %d jobs, %d sent", packs, singles, jobs, srv.Count())
			if old && packs > 0 || !old && packs < (n-srv.Count())/streams.LinePack/2 {
				t.Fatalf("%d packs in lines (an old engine running: %v)", packs, old)
			}
		})
	}
}

// A paced destination's runs end where the throttle's next slot is
// further off than a run waits (runWait): the pack under way is cut there
// (its attempted jobs settled, the rest back in line as jobs of their
// own, in one step), and every recipient still gets exactly one message.
func TestLinePacksCutWhenTheThrottleSaysNotSoon(t *testing.T) {
	const n, rate = 24, 8.0
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Discard: true, Rcpt: func(to string) error { log.note(to); return nil }})
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "cut", n, "example.test")
	if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Throttle.Providers = map[string]config.Limits{
		"route:" + srv.Addr: {StartRate: rate, MinRate: rate, MaxRate: rate, Burst: 1, MaxConnections: 1},
	}
	enginetest.Start(t, cfg)
	s := enginetest.WaitFinished(t, store.New(rdb, ks), "cut", 30*time.Second)
	if s.Delivered != n || srv.Count() != n {
		t.Fatalf("status %+v, %d messages", s, srv.Count())
	}
	for i := range n {
		if got := log.count(fmt.Sprintf("user%05d@example.test", i)); got != 1 {
			t.Fatalf("user%05d: %d RCPTs, want 1", i, got)
		}
	}
}

// The jobs a run sends back in line when it cuts a pack short (a slow
// receiver) are taken again at once, by whichever run the line server
// starts next, even while the run that sent them back still holds them
// (it lets go after its settle returns): never left pending for the
// sweep (sweepEvery, 10 s) to find, nor refused as "already in flight",
// nor left until the line server's next look (IdleWait, an hour here:
// the run wakes it).
func TestCutPackJobsAreTakenAgainAtOnce(t *testing.T) {
	const n = 2000
	var log rcptLog
	srv := slowReceiver(t, &log, 5, 45*time.Millisecond) // slower than slowAttempt: the run cuts its pack
	rdb, ks, cfg := launchFast(t, "cut", n, srv.Addr, 32)
	cfg.Delivery.Workers = 64
	var refused atomic.Int64
	enginetest.StartWith(t, cfg, func(d *engine.Deps) {
		d.Log = slog.New(countHandler{msg: "job already in flight; left pending", n: &refused})
		d.IdleWait = time.Hour
	})
	began := time.Now()
	s := enginetest.WaitFinished(t, store.New(rdb, ks), "cut", 30*time.Second)
	took := time.Since(began)
	if s.Delivered != n || srv.Count() != n {
		t.Fatalf("status %+v, %d messages", s, srv.Count())
	}
	for i := range n {
		if got := log.count(fmt.Sprintf("user%05d@example.test", i)); got != 1 {
			t.Fatalf("user%05d: %d RCPTs, want 1", i, got)
		}
	}
	if refused.Load() > 0 || took > 9*time.Second {
		t.Fatalf("%d takes refused as already in flight; finished in %v (a sweep puts back what is left pending after 10 s)", refused.Load(), took)
	}
}

// countHandler is a slog handler counting the records of one message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// launchFast launches campaign id of n recipients at example.test and
// returns an engine config sending it to addr with no rate limit and
// conns connections.
func launchFast(t *testing.T, id string, n int, addr string, conns int) (*redis.Client, keyspace.Space, *config.Config) {
	t.Helper()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), id, n, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, addr)
	cfg.Throttle.Providers = map[string]config.Limits{
		"route:" + addr: {StartRate: 1e6, MaxRate: 1e6, Burst: 1000, MaxConnections: conns},
	}
	return rdb, ks, cfg
}

// slowReceiver starts a discarding receiver that notes every RCPT in log
// and takes pause over the RCPT of every recipient userNNNNN whose number
// is a multiple of every.
func slowReceiver(t *testing.T, log *rcptLog, every int, pause time.Duration) *smtptest.Server {
	t.Helper()
	return smtptest.Start(t, smtptest.Options{Discard: true, Rcpt: func(to string) error {
		log.note(to)
		var i int
		if _, err := fmt.Sscanf(to, "user%05d@", &i); err == nil && i%every == 0 {
			time.Sleep(pause)
		}
		return nil
	}})
}
