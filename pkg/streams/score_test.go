package streams

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// TestTakeAndPollScoreLinesInTheirRoundTrip: the lines the line server
// scores for later go with its takes, and the lines it wakes with its
// poll — one round trip each, the scores written as Defer writes them
// (the takes first, the reads after).
func TestTakeAndPollScoreLinesInTheirRoundTrip(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	q.PackLines(false)
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := 0; i < 4; i++ {
		_ = b.Add(campaignJob(i))
	}
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	shard := keyspace.ShardOf(campaignJob(0).To)
	fast := Line{Shard: shard, Lane: Marketing, Campaign: "x", Key: "fast"}
	slow := Line{Shard: shard, Lane: Marketing, Campaign: "x", Key: "mx:slow.test"}
	var rs []Routed
	for i, d := range read(t, q, Marketing) {
		rs = append(rs, Routed{Delivery: d, Line: []Line{fast, slow}[i%2]})
	}
	if n, err := q.Route(ctx, Marketing, rs); n != 4 || err != nil {
		t.Fatalf("routed %d %v", n, err)
	}
	trips := &tripCount{}
	rdb.AddHook(trips)

	later := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	taken, err := q.TakeMany(ctx, []TakeAsk{{Line: fast, N: 1}}, map[Line]time.Time{slow: later})
	if err != nil || len(taken) != 1 || len(taken[0].Jobs) != 1 || taken[0].Left != 1 {
		t.Fatalf("take: %+v %v", taken, err)
	}
	if n := trips.n.Swap(0); n != 1 {
		t.Fatalf("take and scores: %d round trips, want 1", n)
	}
	if s := rdb.ZScore(ctx, q.ready(shard), slow.Name()).Val(); s != float64(later.UnixMilli()) {
		t.Fatalf("slow line scored %v, want %d", s, later.UnixMilli())
	}
	trips.n.Store(0)
	due, _, err := q.Poll(ctx, time.Now().Add(time.Second), 10, nil)
	if err != nil || len(due) != 1 || due[0] != fast {
		t.Fatalf("due %v %v; want the fast line alone", due, err)
	}
	due, _, err = q.Poll(ctx, time.Now().Add(time.Second), 10, map[Line]time.Time{slow: time.Now()})
	if err != nil || len(due) != 2 || due[1] != fast && due[0] != fast {
		t.Fatalf("due %v %v after waking the slow line; want both", due, err)
	}
	if n := trips.n.Load(); n != 2 {
		t.Fatalf("two polls: %d round trips", n)
	}
	// A line that left the ready set is not put back by a score (XX).
	if _, err := q.TakeMany(ctx, []TakeAsk{{Line: fast, N: 5}}, map[Line]time.Time{fast: later}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZScore(ctx, q.ready(shard), fast.Name()).Err(); err != redis.Nil {
		t.Fatalf("the fast line, out of jobs, is in the ready set again: %v", err)
	}
}

// tripCount counts round trips: single commands and pipelines.
type tripCount struct{ n atomic.Int64 }

func (h *tripCount) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *tripCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error { h.n.Add(1); return next(ctx, c) }
}
func (h *tripCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error { h.n.Add(1); return next(ctx, cs) }
}
