package launch

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// laneEntries counts the marketing lane's entries and those holding one
// job (streams.JobField).
func laneEntries(t *testing.T, q *streams.Queue, ks keyspace.Space) (all, single int) {
	t.Helper()
	rdb := redistest.Client(t)
	for shard := range keyspace.Shards {
		ms, err := rdb.XRange(context.Background(), q.Stream(shard, streams.Marketing), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			all++
			if _, ok := m.Values[streams.JobField]; ok {
				single++
			}
		}
	}
	return all, single
}

// While an engine of a version from before the packs runs (it beats but
// says nothing of what it reads), a launch writes one entry a job, which
// it can read, and says so; while one from before the runs of events
// runs, it packs, with its events as JSON arrays; with only engines of
// this version, it packs and writes runs of events. Each launch's
// recipients have their queued events, whatever their form.
func TestLaunchPacksOnlyWhenEveryEngineReadsThem(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	q := streams.New(rdb, ks, "new-engine")
	if err := q.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	old := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := rdb.HSet(ctx, q.Engines(), "old-engine", old).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := Launch(ctx, rdb, ks, writeCampaign(t, "mixed", 600), Options{})
	if err != nil || res.Enqueued != 600 || len(res.OldEngines) != 1 || res.OldEngines[0] != "old-engine" {
		t.Fatalf("launch with an old engine running: %+v %v", res, err)
	}
	if all, single := laneEntries(t, q, ks); all != 600 || single != 600 {
		t.Fatalf("%d entries, %d of one job: want 600 of one job each", all, single)
	}
	if n := eventEntries(t, q)[events.RunField]; n != 0 {
		t.Fatalf("%d runs of events with an old engine running", n)
	}
	// The old engine stopped a minute ago; one that reads packs but not
	// runs of events (the version before them) runs: the launch packs,
	// and writes its events as JSON arrays.
	if err := rdb.HSet(ctx, q.Engines(), "old-engine", time.Now().Add(-2*time.Minute).UnixMilli(), "packs-engine", time.Now().UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, q.Reads(), "packs-engine", "packs").Err(); err != nil {
		t.Fatal(err)
	}
	res, err = Launch(ctx, rdb, ks, writeCampaign(t, "packed", 600), Options{})
	if err != nil || res.Enqueued != 600 || len(res.OldEngines) != 1 || res.OldEngines[0] != "packs-engine" {
		t.Fatalf("launch with an engine of the packs: %+v %v", res, err)
	}
	if all, single := laneEntries(t, q, ks); all-600 > 60 || single != 600 {
		t.Fatalf("%d entries (%d of one job) after a second launch of 600: not packed", all, single)
	}
	if n := eventEntries(t, q)[events.RunField]; n != 0 {
		t.Fatalf("%d runs of events with an engine of the packs running", n)
	}
	// New engines only: packs and runs of events.
	if err := rdb.HDel(ctx, q.Engines(), "packs-engine").Err(); err != nil {
		t.Fatal(err)
	}
	before := eventEntries(t, q)
	res, err = Launch(ctx, rdb, ks, writeCampaign(t, "runs", 600), Options{})
	if err != nil || res.Enqueued != 600 || len(res.OldEngines) != 0 {
		t.Fatalf("launch with new engines only: %+v %v", res, err)
	}
	after := eventEntries(t, q)
	if after[events.RunField] == 0 || after[events.BatchField] != before[events.BatchField] || after[events.Field] != before[events.Field] {
		t.Fatalf("event entries %v, then %v: want the third launch's as runs only", before, after)
	}
	if depth, _, _ := q.Depth(ctx, streams.Marketing); depth != 1800 {
		t.Fatalf("lane depth %d, want 1800 jobs", depth)
	}
	queued := map[string]int{}
	evs, err := events.New(rdb, ks).Read(ctx, "0", 5000, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == events.Queued {
			queued[e.Campaign]++
		}
	}
	if queued["mixed"] != 600 || queued["packed"] != 600 || queued["runs"] != 600 {
		t.Fatalf("queued events per campaign %v, want 600 each", queued)
	}
}

// eventEntries counts the entries of every shard's events stream by the
// field that holds their events.
func eventEntries(t *testing.T, q *streams.Queue) map[string]int {
	t.Helper()
	rdb := redistest.Client(t)
	out := map[string]int{}
	for shard := range keyspace.Shards {
		ms, err := rdb.XRange(context.Background(), q.EventsKey(shard), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			for f := range m.Values {
				out[f]++
			}
		}
	}
	return out
}
