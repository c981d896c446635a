package streams

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// TestSettleRunSettlesARunInOneStep: a run's outcomes are recorded in one
// script: delivered and deferred counted, a job settled before (no longer
// held) left alone, a final record not counted twice, and the events
// appended as one entry.
func TestSettleRunSettlesARunInOneStep(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	sh := keyspace.ShardOf(campaignJob(0).To)
	line := Line{Shard: sh, Lane: Marketing, Campaign: "x", Key: "k"}
	var rs []Routed
	for _, d := range enqueueAndRead(t, q, tl, 4) {
		rs = append(rs, Routed{Delivery: d, Line: line})
	}
	if n, err := q.Route(ctx, Marketing, rs); n != 4 || err != nil {
		t.Fatalf("route %d %v", n, err)
	}
	ds, _, err := q.Take(ctx, line, 10)
	if err != nil || len(ds) != 4 {
		t.Fatalf("take %d %v", len(ds), err)
	}
	// ds[0] settled on its own before (its run's settle then finds it
	// no longer held); ds[3]'s recipient is final already.
	if s, _ := q.Settle(ctx, ds[0], tl, Record{Status: "delivered"}, nil, time.Time{}); s != Recorded {
		t.Fatalf("single settle %v", s)
	}
	if err := rdb.HSet(ctx, tl.In(sh).Records, ds[3].RecordField(), Record{Status: "bounced"}.Encode()).Err(); err != nil {
		t.Fatal(err)
	}
	events0, _ := rdb.XLen(ctx, q.EventsKey(sh)).Result()
	next := ds[2].Job
	next.Attempts++
	retry := time.Now().Add(time.Minute)
	res, err := q.SettleRun(ctx, []Settlement{
		{D: ds[0], Tally: tl, Rec: Record{Status: "delivered"}},
		{D: ds[1], Tally: tl, Rec: Record{Status: "delivered", Code: 250}},
		{D: ds[2], Tally: tl, Rec: Record{Status: "deferred", Code: 451}, Next: &next, RetryAt: retry},
		{D: ds[3], Tally: tl, Rec: Record{Status: "delivered"}},
	})
	if err != nil || len(res) != 4 || res[0] != NotHeld || res[1] != Recorded || res[2] != Recorded || res[3] != AlreadyFinal {
		t.Fatalf("settle run %v %v", res, err)
	}
	c := counters(t, rdb, tl)
	if c["delivered"] != "2" || c["deferred"] != "1" || c["queued"] != "2" {
		t.Fatalf("counters %v", c)
	}
	if rec, _ := ReadRecord(ctx, rdb, tl, ds[1].RecordField()); rec.Status != "delivered" || rec.Code != 250 {
		t.Fatalf("record %+v", rec)
	}
	if n := rdb.XLen(ctx, q.LineStream(line)).Val(); n != 0 {
		t.Fatalf("line holds %d entries after the run's settle", n)
	}
	if z := rdb.ZRangeWithScores(ctx, q.Delayed(sh, Marketing), 0, -1).Val(); len(z) != 1 || int64(z[0].Score) != retry.UnixMilli() {
		t.Fatalf("retry set %v", z)
	}
	es := shardEvents(t, q)
	if n := rdb.XLen(ctx, q.EventsKey(sh)).Val(); n != events0+1 || es[len(es)-1].Type != "deferred" || es[len(es)-2].Type != "delivered" {
		t.Fatalf("%d event entries (%d before), last events %+v", n, events0, es[len(es)-2:])
	}
}
