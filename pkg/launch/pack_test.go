package launch

import (
	"context"
	"strconv"
	"testing"
	"time"

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
// it can read, and says so; with only engines that read packs it packs.
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
	// The old engine stopped a minute ago: the next launch packs.
	if err := rdb.HSet(ctx, q.Engines(), "old-engine", time.Now().Add(-2*time.Minute).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = Launch(ctx, rdb, ks, writeCampaign(t, "packed", 600), Options{})
	if err != nil || res.Enqueued != 600 || len(res.OldEngines) != 0 {
		t.Fatalf("launch with new engines only: %+v %v", res, err)
	}
	if all, single := laneEntries(t, q, ks); all-600 > 60 || single != 600 {
		t.Fatalf("%d entries (%d of one job) after a second launch of 600: not packed", all, single)
	}
	if depth, _, _ := q.Depth(ctx, streams.Marketing); depth != 1200 {
		t.Fatalf("lane depth %d, want 1200 jobs", depth)
	}
}
