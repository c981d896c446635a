package streams

import (
	"context"
	"testing"
	"time"
)

// packedLine routes campaign jobs 0..n-1 (shard 0's, read from the lane
// 10 at a time) into one line in one call, and checks they went in as
// packs of LinePack (the last one smaller).
func packedLine(t *testing.T, q *Queue, tl Tally, n int) Line {
	t.Helper()
	var ds []Delivery
	for from := 0; from < n; from += 10 {
		ds = append(ds, enqueueAndReadFrom(t, q, tl, from, min(10, n-from))...)
	}
	line := routeAll(t, q, ds)
	want := int64((n + LinePack - 1) / LinePack)
	if got := q.rdb.XLen(context.Background(), q.LineStream(line)).Val(); got != want || lineJobs(t, q, line) != n {
		t.Fatalf("line holds %d entries, %d jobs; want %d packs of %d jobs", got, lineJobs(t, q, line), want, n)
	}
	return line
}

// TestLinePackSettledWithItsRestBack: a pack is taken as jobs of one
// entry; its run settles the jobs it attempted and sends the rest back as
// jobs of their own in the same step, which lets go of the pack; a second
// try of that step changes nothing; the jobs sent back are taken again on
// their own, and nothing is lost or counted twice.
func TestLinePackSettledWithItsRestBack(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	line := packedLine(t, q, tl, 25)
	ds, left, err := q.Take(ctx, line, 2)
	if err != nil || len(ds) != 20 || left != 1 || ds[0].Pack != LinePack || ds[9].StreamID != ds[0].StreamID || ds[10].StreamID == ds[0].StreamID {
		t.Fatalf("took %d jobs, %d entries left, %v", len(ds), left, err)
	}
	var ss []Settlement
	for i, d := range ds {
		s := Settlement{D: d, Tally: tl, Rec: Record{Status: "delivered"}}
		if i >= 4 && i < 10 { // the first pack's run stopped after 4
			s = Settlement{D: d, Tally: tl, Back: true, Line: &line}
		}
		ss = append(ss, s)
	}
	for try := range 2 {
		res, err := q.SettleRun(ctx, ss)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			want := Recorded
			switch {
			case try == 1:
				want = NotHeld
			case i >= 4 && i < 10:
				want = WentBack
			}
			if r != want {
				t.Fatalf("try %d: job %d %v, want %v", try, i, r, want)
			}
		}
	}
	if c := counters(t, rdb, tl); c["delivered"] != "14" || c["queued"] != "11" {
		t.Fatalf("counters %v", c)
	}
	if d := q.streamDepths(ctx, []string{q.LineStream(line)})[0]; d != (StreamDepth{Unread: 7}) {
		t.Fatalf("line depth %+v: want the last pack and 6 jobs back", d)
	}
	if due, _, _ := q.Poll(ctx, time.Now().Add(time.Second), 10, nil); len(due) != 1 || due[0] != line {
		t.Fatalf("due %v", due)
	}
	again, _, err := q.Take(ctx, line, 10)
	if err != nil || len(again) != 11 {
		t.Fatalf("took %d again, %v", len(again), err)
	}
	seen := map[string]int{}
	for _, d := range again {
		seen[d.ID]++
	}
	for _, d := range ds[4:10] {
		if seen[d.ID] != 1 {
			t.Fatalf("job %s back %d times; took %v", d.ID, seen[d.ID], seen)
		}
	}
	for _, d := range again {
		if seen[d.ID] != 1 || (d.Pack > 1) != (d.StreamID == again[0].StreamID && again[0].Pack > 1) {
			t.Fatalf("took again %+v", again)
		}
	}
}

// TestLinePackGoesBackWhole: a pack is put back, requeued at a restart and
// taken over only as a whole, and stays one entry of all its jobs.
func TestLinePackGoesBackWhole(t *testing.T) {
	q, rdb, tl := setup(t, "dead")
	ctx := context.Background()
	line := packedLine(t, q, tl, 20)
	ds, _, err := q.Take(ctx, line, 2)
	if err != nil || len(ds) != 20 {
		t.Fatalf("took %d, %v", len(ds), err)
	}
	if n, err := q.PutBack(ctx, line, ds[:9]); n != 0 || err != nil {
		t.Fatalf("put back %d of a pack missing a job, %v", n, err)
	}
	if n, err := q.PutBack(ctx, line, ds[:10]); n != 10 || err != nil {
		t.Fatalf("put back %d, %v", n, err)
	}
	back, _, err := q.Take(ctx, line, 5)
	if err != nil || len(back) != 10 || back[0].Pack != 10 || back[0].StreamID == ds[0].StreamID {
		t.Fatalf("took back %d jobs (pack %d), %v", len(back), back[0].Pack, err)
	}
	// This consumer starts again: what it held goes back, packs whole.
	if n, err := q.RequeueOwnLine(ctx, line); n != 20 || err != nil {
		t.Fatalf("requeued %d, %v", n, err)
	}
	if n := rdb.XLen(ctx, q.LineStream(line)).Val(); n != 2 || lineJobs(t, q, line) != 20 {
		t.Fatalf("line holds %d entries, %d jobs after the requeue", n, lineJobs(t, q, line))
	}
	// Held by a consumer gone silent: another takes the packs over whole.
	if got, _, err := q.Take(ctx, line, 5); err != nil || len(got) != 20 {
		t.Fatalf("took %d, %v", len(got), err)
	}
	alive := New(rdb, q.ks, "alive")
	n, isAlive, err := alive.TakeOverLine(ctx, line, "dead", 0)
	if err != nil || isAlive || n != 20 {
		t.Fatalf("took over %d (alive %v), %v", n, isAlive, err)
	}
	got, _, err := alive.Take(ctx, line, 5)
	if err != nil || len(got) != 20 || got[0].Pack != 10 || got[19].Pack != 10 {
		t.Fatalf("the new holder took %d, %v", len(got), err)
	}
}

// TestLinePacksCancelledAndCounted: a cancelled campaign's line is
// cancelled job by job, packs included, and its depth counts jobs.
func TestLinePacksCancelledAndCounted(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	line := packedLine(t, q, tl, 25)
	if _, _, err := q.Take(ctx, line, 1); err != nil {
		t.Fatal(err)
	}
	ls, err := q.CampaignLines(ctx, "x")
	if err != nil || len(ls) != 1 || ls[0].Held != 10 || ls[0].Waiting != 15 {
		t.Fatalf("campaign lines %+v, %v", ls, err)
	}
	if n, err := q.CancelLine(ctx, line, tl, 500); n != 15 || err != nil {
		t.Fatalf("cancelled %d, %v", n, err)
	}
	if c := counters(t, rdb, tl); c["cancelled"] != "15" || c["queued"] != "10" {
		t.Fatalf("counters %v", c)
	}
}
