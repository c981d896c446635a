package streams

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// TestLinesRouteTakeAndLeave: routed jobs wait in their line; a line out
// of jobs leaves the ready set and an empty one is deleted; lines sharing
// a key take turns; a line scored for later is not due.
func TestLinesRouteTakeAndLeave(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	q.PackLines(false) // a job an entry: what a line does with entries (packs: pack_test.go)
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := 0; i < 6; i++ {
		_ = b.Add(campaignJob(i))
	}
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds := read(t, q, Marketing)
	fast := Line{Shard: keyspace.ShardOf(campaignJob(0).To), Lane: Marketing, Campaign: "x", Key: "fast"}
	slow := Line{Shard: keyspace.ShardOf(campaignJob(0).To), Lane: Marketing, Campaign: "x", Key: "mx:slow.test"}
	var rs []Routed
	for i, d := range ds {
		l := fast
		if i%2 == 1 {
			l = slow
		}
		rs = append(rs, Routed{Delivery: d, Line: l})
	}
	if n, err := q.Route(ctx, Marketing, rs); n != 6 || err != nil {
		t.Fatalf("routed %d %v", n, err)
	}
	if n := laneLen(q, Marketing); n != 0 {
		t.Fatalf("lane still has %d entries", n)
	}
	if n, _ := q.Route(ctx, Marketing, rs); n != 0 {
		t.Fatalf("routed %d jobs no longer held", n)
	}
	due, _, err := q.Poll(ctx, time.Now().Add(time.Second), 10, nil)
	if err != nil || len(due) != 2 {
		t.Fatalf("due %v %v", due, err)
	}
	// The slow line may not send for a minute: not due until then.
	if err := q.Defer(ctx, map[Line]time.Time{slow: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 1 || due[0] != fast {
		t.Fatalf("due after defer %v", due)
	}
	got, left, err := q.Take(ctx, fast, 2)
	if err != nil || len(got) != 2 || left != 1 || got[0].Key != "fast" || got[0].Stream != q.LineStream(fast) {
		t.Fatalf("take %+v, %d left, %v", got, left, err)
	}
	got2, _, _ := q.Take(ctx, fast, 5) // the last one: the line leaves the ready set
	if len(got2) != 1 {
		t.Fatalf("take %d", len(got2))
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 0 {
		t.Fatalf("due %v after the fast line ran out", due)
	}
	for _, d := range append(got, got2...) {
		if s, _ := q.Settle(ctx, d, tl, Record{Status: "delivered"}, nil, time.Time{}); s != Recorded {
			t.Fatalf("settle %v", s)
		}
	}
	// Empty now: taking once more deletes the line.
	if g, _, _ := q.Take(ctx, fast, 1); len(g) != 0 {
		t.Fatal("took from an empty line")
	}
	if rdb.Exists(ctx, q.LineStream(fast)).Val() != 0 || rdb.SIsMember(ctx, q.lines(fast.Shard), fast.Name()).Val() {
		t.Fatal("empty line not deleted")
	}
	// Waking the slow key makes its line due at once.
	if n, err := q.Wake(ctx, "mx:slow.test"); n != 1 || err != nil {
		t.Fatalf("wake %d %v", n, err)
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 1 || due[0] != slow {
		t.Fatalf("due after wake %v", due)
	}
	// A restart puts held line jobs back, once.
	held, _, _ := q.Take(ctx, slow, 2)
	if len(held) != 2 {
		t.Fatalf("take %d", len(held))
	}
	if n, err := q.RequeueOwnLine(ctx, slow); n != 2 || err != nil {
		t.Fatalf("requeue %d %v", n, err)
	}
	if again, _, _ := q.Take(ctx, slow, 10); len(again) != 3 {
		t.Fatalf("after requeue took %d, want 3", len(again))
	}
	var names []string
	_ = q.Lines(ctx, func(l Line) error { names = append(names, l.Name()); return nil })
	if len(names) != 1 || names[0] != slow.Name() {
		t.Fatalf("lines %v", names)
	}
}

// TestLinesSharingAKeyTakeTurns: after a take, a line with jobs left goes
// behind the other due lines.
func TestLinesSharingAKeyTakeTurns(t *testing.T) {
	q, _, tl := setup(t, "e1")
	ctx := context.Background()
	q.PackLines(false) // a job an entry: what a line does with entries (packs: pack_test.go)
	big := Line{Shard: keyspace.ShardOf(campaignJob(0).To), Lane: Marketing, Campaign: "big", Key: "k"}
	small := Line{Shard: keyspace.ShardOf(campaignJob(0).To), Lane: Marketing, Campaign: "small", Key: "k"}
	for _, l := range []Line{big, small} {
		b := &Batch{Lane: Marketing, Tally: tl}
		for i := 0; i < 4; i++ {
			j := campaignJob(i)
			j.ID, j.Campaign, j.To = l.Campaign+j.ID, l.Campaign, inShard(l.Shard, l.Campaign, "@example.test")[i]
			_ = b.Add(j)
		}
		if _, err := q.Enqueue(ctx, b); err != nil {
			t.Fatal(err)
		}
		ds := read(t, q, Marketing)
		var rs []Routed
		for _, d := range ds {
			rs = append(rs, Routed{Delivery: d, Line: l})
		}
		if _, err := q.Route(ctx, Marketing, rs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 2 || due[0] != big {
		t.Fatalf("due %v, want big first", due)
	}
	time.Sleep(5 * time.Millisecond)
	if got, left, _ := q.Take(ctx, big, 1); len(got) != 1 || left != 3 {
		t.Fatal("take")
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 2 || due[0] != small {
		t.Fatalf("due %v, want small first after big took its turn", due)
	}
}
