package streams

import (
	"context"
	"errors"
	"maps"
	"testing"
)

// TestEnqueueEventsSkipDuplicates: a batch part with duplicates (in it,
// and of an earlier batch) appends one event per recipient it added, and
// none for a duplicate; a part without any appends them all as one entry.
func TestEnqueueEventsSkipDuplicates(t *testing.T) {
	q, _, tl := setup(t, "ev")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Checkpoint: "3"}
	for i := 0; i < 2; i++ {
		if err := b.Add(campaignJob(i)); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 2 {
		t.Fatalf("first batch: %+v %v", res, err)
	}
	b.Checkpoint = "9"
	for _, i := range []int{1, 2, 3, 2} { // 1: of the first batch; 2 twice
		_ = b.Add(campaignJob(i))
	}
	b.AddFinal(campaignJob(4), Record{Status: "suppressed"})
	res, err := q.Enqueue(ctx, b)
	if err != nil || res != (BatchResult{Added: 2, Final: 1, Duplicates: 2}) {
		t.Fatalf("second batch: %+v %v", res, err)
	}
	got := map[string]int{}
	for _, e := range shardEvents(t, q) {
		got[string(e.Type)+" "+e.Recipient]++
	}
	want := map[string]int{"suppressed " + campaignJob(4).To: 1}
	for i := 0; i < 4; i++ {
		want["queued "+campaignJob(i).To] = 1
	}
	if !maps.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if n := laneLen(q, Marketing); n != 4 {
		t.Fatalf("stream holds %d jobs, want 4", n)
	}
}

// TestEnqueueRefusesAMovedCheckpoint: a part whose shard's checkpoint is
// not where the batch expects it (another launch of the campaign wrote
// there) is refused whole, and a new address added without a look-up
// (AddNew) is queued like any other.
func TestEnqueueRefusesAMovedCheckpoint(t *testing.T) {
	q, rdb, tl := setup(t, "cas")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Checkpoint: "3"}
	if err := b.AddNew(campaignJob(0)); err != nil {
		t.Fatal(err)
	}
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 1 || b.Since[0] != 3 {
		t.Fatalf("first batch: %+v %v, since %d", res, err, b.Since[0])
	}
	// A second launcher that read the checkpoints before that write.
	other := &Batch{Lane: Marketing, Tally: tl, Checkpoint: "5"}
	_ = other.AddNew(campaignJob(1))
	if _, err := q.Enqueue(ctx, other); !errors.Is(err, ErrCheckpointMoved) {
		t.Fatalf("stale launcher: %v, want ErrCheckpointMoved", err)
	}
	if n := laneLen(q, Marketing); n != 1 {
		t.Fatalf("stream holds %d jobs, want 1", n)
	}
	if c := counters(t, rdb, tl); c["checkpoint"] != "3" || c["total"] != "1" {
		t.Fatalf("counters %v", c)
	}
	// The first launcher goes on from where it left the shard.
	b.Checkpoint = "5"
	_ = b.AddNew(campaignJob(1))
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 1 {
		t.Fatalf("second batch: %+v %v", res, err)
	}
}
