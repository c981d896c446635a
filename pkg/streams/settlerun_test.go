package streams

import (
	"context"
	"sync"
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
	sh, line, ds := takenFromALine(t, q, tl, 4)
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
	if d := q.streamDepths(ctx, []string{q.LineStream(line)})[0]; d != (StreamDepth{}) {
		t.Fatalf("line holds %+v after the run's settle", d)
	}
	if z := rdb.ZRangeWithScores(ctx, q.Delayed(sh, Marketing), 0, -1).Val(); len(z) != 1 || int64(z[0].Score) != retry.UnixMilli() {
		t.Fatalf("retry set %v", z)
	}
	es := shardEvents(t, q)
	if n := rdb.XLen(ctx, q.EventsKey(sh)).Val(); n != events0+1 || es[len(es)-1].Type != "deferred" || es[len(es)-2].Type != "delivered" {
		t.Fatalf("%d event entries (%d before), last events %+v", n, events0, es[len(es)-2:])
	}
}

// TestRunsEndingTogetherShareOneSettle: runs that end while another
// settle is on its way are settled together, the runs of one line in one
// script call (one events entry for all), each worker given its own
// results, every outcome counted once.
func TestRunsEndingTogetherShareOneSettle(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	sh, line, ds := takenFromALine(t, q, tl, 60)
	events0 := rdb.XLen(ctx, q.EventsKey(sh)).Val()

	// A settle is on its way (busy): the 30 runs ending now wait for it.
	q.settles.mu.Lock()
	q.settles.busy = true
	q.settles.mu.Unlock()
	const runs = 30
	results := make([][]Settled, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for r := 0; r < runs; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := ds[2*r+1].Job
			next.Attempts++
			results[r], errs[r] = q.SettleRun(ctx, []Settlement{
				{D: ds[2*r], Tally: tl, Rec: Record{Status: "delivered"}},
				{D: ds[2*r+1], Tally: tl, Rec: Record{Status: "deferred"}, Next: &next, RetryAt: time.Now().Add(time.Minute)},
			})
		}()
	}
	for waiting := 0; waiting < runs; {
		time.Sleep(time.Millisecond)
		q.settles.mu.Lock()
		waiting = len(q.settles.queue)
		q.settles.mu.Unlock()
	}
	// The settle on its way ends and hands the lead on.
	q.settles.mu.Lock()
	q.settles.queue[0].lead = true
	close(q.settles.queue[0].done)
	q.settles.mu.Unlock()
	wg.Wait()

	for r := range results {
		if errs[r] != nil || len(results[r]) != 2 || results[r][0] != Recorded || results[r][1] != Recorded {
			t.Fatalf("run %d: %v %v", r, results[r], errs[r])
		}
	}
	if c := counters(t, rdb, tl); c["delivered"] != "30" || c["deferred"] != "30" || c["queued"] != "30" {
		t.Fatalf("counters %v", c)
	}
	if d := q.streamDepths(ctx, []string{q.LineStream(line)})[0]; d != (StreamDepth{}) {
		t.Fatalf("line holds %+v after the settles", d)
	}
	if n := rdb.ZCard(ctx, q.Delayed(sh, Marketing)).Val(); n != 30 {
		t.Fatalf("%d retries, want 30", n)
	}
	if n := rdb.XLen(ctx, q.EventsKey(sh)).Val(); n != events0+1 {
		t.Fatalf("%d events entries for 30 runs of one line, want 1 (one script call)", n-events0)
	}
	if q.settles.busy || len(q.settles.queue) != 0 {
		t.Fatalf("batcher left busy=%v with %d waiting", q.settles.busy, len(q.settles.queue))
	}
}

// takenFromALine enqueues campaign jobs 0..n-1 (all of one shard, sh),
// routes them into one line and takes them all.
func takenFromALine(t *testing.T, q *Queue, tl Tally, n int) (sh int, line Line, ds []Delivery) {
	t.Helper()
	ctx := context.Background()
	q.PackLines(false) // a job an entry: these tests settle jobs one by one (packs: pack_test.go)
	sh = keyspace.ShardOf(campaignJob(0).To)
	line = Line{Shard: sh, Lane: Marketing, Campaign: "x", Key: "k"}
	var rs []Routed
	for from := 0; from < n; from += 10 { // the lane read gives 10 at a time
		for _, d := range enqueueAndReadFrom(t, q, tl, from, min(10, n-from)) {
			rs = append(rs, Routed{Delivery: d, Line: line})
		}
	}
	if got, err := q.Route(ctx, Marketing, rs); got != n || err != nil {
		t.Fatalf("route %d %v", got, err)
	}
	ds, _, err := q.Take(ctx, line, n)
	if err != nil || len(ds) != n {
		t.Fatalf("take %d %v", len(ds), err)
	}
	return sh, line, ds
}

// TestStreamIDLess orders ids numerically by both parts, not as strings,
// which is what bounds the settle script's XPENDING range.
func TestStreamIDLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1-0", "1-1", true},
		{"1-1", "1-0", false},
		{"1-1", "1-1", false},
		{"9-5", "10-0", true},
		{"1700000000000-9", "1700000000000-10", true},
		{"1700000000001-0", "1700000000000-99", false},
		{"18446744073709551615-0", "18446744073709551615-1", true},
	} {
		if got := streamIDLess(c.a, c.b); got != c.want {
			t.Errorf("streamIDLess(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
