package clustere2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
)

// TestFailover (acceptance 2): kill -9 of the master holding the
// campaign's definition (and four of the twelve shards) a third of
// the way through; its replica is promoted, both engines carry on without
// a restart and the campaign completes. What the README promises:
//
//   - lost: none, with or without redis.wait_replicas, once the launch has
//     returned (a settle or route lost in the failover leaves its job
//     pending again, and the engine's sweep puts it back in line);
//   - duplicates: with wait_replicas 1, none (takes and settles wait for
//     the replica); without, up to the jobs in flight at the kill plus
//     the settles of the last moments before it that had not reached the
//     replica — figures printed.
//
// A kill -9 alone loses next to nothing: the master hands the replication
// stream to the kernel in the same event-loop turn as its replies, and the
// kernel still delivers it. So each case runs twice: once as is, and once
// with the replica cut off for lag before the kill (frozen, its link
// closed: a partition, a replica's host gone), while the cluster still
// counts it. Then what the master acknowledged meanwhile is really lost:
// without wait_replicas those settles are sent again; with it, the
// engines wait (WAIT times out, the write is retried) and nothing that
// counted as done is lost.
func TestFailover(t *testing.T) {
	for _, lag := range []time.Duration{0, 500 * time.Millisecond} {
		for _, wait := range []int{0, 1} {
			t.Run(fmt.Sprintf("wait_replicas=%d/lag=%v", wait, lag), func(t *testing.T) {
				t.Parallel()
				failover(t, wait, lag)
			})
		}
	}
}

func failover(t *testing.T, wait int, lag time.Duration) {
	n := 6000
	if testing.Short() {
		n = 3000
	}
	w := newWorld(t, fmt.Sprintf("fo%d%d", wait, lag/time.Millisecond), n)
	w.rx.delay.Store(int64(5 * time.Millisecond)) // a receiver's think time: jobs in flight
	w.launch(launch.Options{WaitReplicas: wait})
	for _, name := range []string{"e1", "e2"} {
		cfg := w.config(name, w.rx.Addr)
		cfg.Redis.WaitReplicas = wait
		enginetest.Start(t, cfg)
	}
	if !waitFor(60*time.Second, func() bool { return w.rx.total() >= n/3 }) {
		t.Fatalf("a third not delivered after 60s: receiver has %d, status %+v", w.rx.total(), w.status())
	}

	victim := masterOf(t, w.c, w.ks.Key("campaign", w.id))
	var thaw func()
	if lag > 0 {
		var cut func()
		cut, thaw = w.c.FreezeReplica(t, victim.Master)
		cut()
		time.Sleep(lag)
	}
	inFlight := w.held() // just before the kill
	atKill := w.rx.total()
	killed := time.Now()
	w.c.KillMaster(t, victim.index)
	if thaw != nil {
		thaw()
	}
	promoted := w.c.WaitFailover(t)
	failedOver := time.Since(killed)
	if !w.waitFinished(90 * time.Second) {
		t.Fatalf("campaign not finished 90s after the failover: %+v, receiver has %d of %d", w.status(), w.rx.total(), n)
	}
	took := time.Since(killed)
	w.rx.settle() // attempts still in the receiver's think time count too

	got := count(w.rx.copies(), n)
	st := w.status()
	t.Logf("failover wait_replicas=%d lag=%v: lost=%d duplicates=%d in_flight_at_kill=%d received_at_kill=%d failover=%v finished_after=%v recipients=%d (%s → %s)",
		wait, lag, got.lost, got.duplicates, inFlight, atKill, failedOver.Round(10*time.Millisecond), took.Round(100*time.Millisecond),
		n, victim.Addr, promoted.Addr)
	if got.lost != 0 || got.strangers != 0 {
		t.Errorf("lost recipients: %s", got)
	}
	// With wait_replicas a job is sent only once its take is replicated
	// and done only once its settle is: nothing to send again (the bound
	// the brief of issue #12 asked for, jobs in flight, is far looser).
	if wait > 0 && got.duplicates != 0 {
		t.Errorf("%d duplicates with wait_replicas %d (%d jobs in flight at the kill), want none: %s", got.duplicates, wait, inFlight, got)
	}
	if st.Delivered != int64(n) || st.Queued != 0 {
		t.Errorf("status %+v, want %d delivered", st, n)
	}
	w.beatSince(killed.Add(failedOver), "e1", "e2")
}

// victim is a master and its place in slot order.
type victim struct {
	clustertest.Master
	index int
}

// masterOf is the master serving key's slot.
func masterOf(t *testing.T, c *clustertest.Cluster, key string) victim {
	t.Helper()
	for i, m := range c.Masters(t) {
		if m.Has(keyspace.Slot(key)) {
			return victim{m, i}
		}
	}
	t.Fatalf("no master serves %s", key)
	return victim{}
}

// held counts the jobs the engines hold: pending in a line or a lane.
func (w *world) held() int {
	w.t.Helper()
	ctx := context.Background()
	q := streams.New(w.rdb, w.ks, "")
	var keys []string
	for _, l := range streams.Lanes {
		keys = append(keys, w.ks.Key("q", string(l))) // one lane stream, or one per shard
		for n := range keyspace.Shards {
			keys = append(keys, w.ks.In(n, "q", string(l)))
		}
	}
	err := q.Lines(ctx, func(l streams.Line) error {
		keys = append(keys, q.LineStream(l))
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if p, err := w.rdb.XPending(ctx, k, streams.Group).Result(); err == nil { // no such stream: an error
			n += int(p.Count)
		}
	}
	return n
}

// beatSince fails the test unless every named engine beat its heartbeat
// after t: it went on by itself.
func (w *world) beatSince(t time.Time, names ...string) {
	w.t.Helper()
	beats, err := w.rdb.HGetAll(context.Background(), w.ks.Key("engines")).Result()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, name := range names {
		ms, _ := strconv.ParseInt(beats[name], 10, 64)
		if at := time.UnixMilli(ms); !at.After(t) {
			w.t.Errorf("engine %s last beat at %v, not after the failover (%v): %v", name, at, t, fmt.Sprint(beats))
		}
	}
}
