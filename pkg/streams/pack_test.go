package streams

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// packJob is the i-th job of campaign x with a recipient of shard 0 (up
// to 640 of them), its merge field holding a newline.
func packJob(i int) *Job {
	return &Job{ID: fmt.Sprintf("x/%d", i), Campaign: "x", To: packAddrs[i], Lane: Marketing, Line: i + 2,
		First: time.Now().UnixMilli(), Fields: map[string]string{"note": fmt.Sprintf("line one\nline %d", i)}}
}

var packAddrs = func() []string {
	var out []string
	for i := 0; len(out) < 640; i++ {
		if s := fmt.Sprintf("p%d@example.test", i); keyspace.ShardOf(s) == 0 {
			out = append(out, s)
		}
	}
	return out
}()

// routeAll routes ds, jobs of shard 0, all into one line of campaign x
// and fails unless every one moved; it returns the line.
func routeAll(t *testing.T, q *Queue, ds []Delivery) Line {
	t.Helper()
	line := Line{Shard: 0, Lane: Marketing, Campaign: "x", Key: "fast"}
	rs := make([]Routed, len(ds))
	for i, d := range ds {
		rs[i] = Routed{Delivery: d, Line: line}
	}
	if n, err := q.Route(context.Background(), Marketing, rs); n != len(ds) || err != nil {
		t.Fatalf("routed %d of %d: %v", n, len(ds), err)
	}
	return line
}

// entries is the lane stream's entries of shard 0: the field holding
// each one's jobs.
func entries(t *testing.T, q *Queue) []string {
	t.Helper()
	ms, err := q.rdb.XRange(context.Background(), q.Stream(0, Marketing), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		for f := range m.Values {
			out = append(out, f)
		}
	}
	return out
}

// TestPackedEnqueueReadAndRoute: a batch with Pack puts a shard's jobs in
// packs of even sizes; a read returns every job of them, each knowing its
// pack's size; a second batch with duplicates adds only the new jobs,
// the packs cut to leave the duplicates out; routing a pack moves all its
// jobs into their lines and lets the pack go.
func TestPackedEnqueueReadAndRoute(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Pack: 64, Checkpoint: "151"}
	for i := range 150 {
		_ = b.Add(packJob(i))
	}
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 150 {
		t.Fatalf("enqueue %+v %v", res, err)
	}
	if es := entries(t, q); len(es) != 3 || es[0] != PackField {
		t.Fatalf("entries %v, want 3 packs", es)
	}
	if n := laneLen(q, Marketing); n != 150 {
		t.Fatalf("depth %d, want 150 jobs", n)
	}
	ds, _, err := q.Read(ctx, Marketing, 200)
	if err != nil || len(ds) != 150 {
		t.Fatalf("read %d %v", len(ds), err)
	}
	for i, d := range ds {
		if d.ID != fmt.Sprintf("x/%d", i) || d.Pack != 50 || d.Fields["note"] != fmt.Sprintf("line one\nline %d", i) || d.Stream != q.Stream(0, Marketing) {
			t.Fatalf("job %d: %+v", i, d)
		}
	}
	// Jobs 100..199 again, 150..199 new: one pack of the 50 new ones.
	b2 := &Batch{Lane: Marketing, Tally: tl, Pack: 64, Checkpoint: "201", Since: b.Since}
	for i := 100; i < 200; i++ {
		_ = b2.Add(packJob(i))
	}
	res, dups, err := q.EnqueueDuplicates(ctx, b2)
	if err != nil || res.Added != 50 || res.Duplicates != 50 || len(dups) != 50 || dups[0] != 0 {
		t.Fatalf("second batch %+v %v %v", res, len(dups), err)
	}
	more, _, err := q.Read(ctx, Marketing, 200)
	if err != nil || len(more) != 50 || more[0].ID != "x/150" || more[49].ID != "x/199" {
		t.Fatalf("read of the second batch %d %v", len(more), err)
	}
	line := routeAll(t, q, append(ds, more...))
	if p := pendingOf(t, q, Marketing, "e1"); p != 0 {
		t.Fatalf("%d packs still held", p)
	}
	if n := laneLen(q, Marketing); n != 0 {
		t.Fatalf("depth %d after routing every pack", n)
	}
	// Routed together, the line's jobs went in as packs of LinePack.
	if n, jobs := rdb.XLen(ctx, q.LineStream(line)).Val(), lineJobs(t, q, line); n != 200/LinePack || jobs != 200 {
		t.Fatalf("line holds %d entries, %d jobs", n, jobs)
	}
	if c := counters(t, rdb, tl); c["queued"] != "200" || c["duplicates"] != "50" {
		t.Fatalf("counters %v", c)
	}
}

// TestPackJobsBackOnTheirOwn: jobs of a pack that need a step of their
// own go back into the lane, each an entry of its own, in the step that
// routes the others; the pack is gone and nothing is lost or doubled.
func TestPackJobsBackOnTheirOwn(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Pack: 64}
	for i := range 5 {
		_ = b.Add(packJob(i))
	}
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds := read(t, q, Marketing)
	if len(ds) != 5 || ds[0].Pack != 5 {
		t.Fatalf("read %+v", ds)
	}
	line := Line{Shard: 0, Lane: Marketing, Campaign: "x", Key: "fast"}
	var rs []Routed
	for i, d := range ds {
		rs = append(rs, Routed{Delivery: d, Line: line, Back: i%2 == 1})
	}
	if n, err := q.Route(ctx, Marketing, rs); n != 5 || err != nil {
		t.Fatalf("routed %d %v", n, err)
	}
	if n, jobs := rdb.XLen(ctx, q.LineStream(line)).Val(), lineJobs(t, q, line); n != 1 || jobs != 3 {
		t.Fatalf("line holds %d entries, %d jobs; want one pack of 3", n, jobs)
	}
	if n := laneLen(q, Marketing); n != 2 {
		t.Fatalf("depth %d, want the 2 jobs put back", n)
	}
	again := read(t, q, Marketing)
	if len(again) != 2 || again[0].ID != "x/1" || again[1].ID != "x/3" || again[0].Pack != 0 {
		t.Fatalf("read back %+v", again)
	}
	if es := entries(t, q); len(es) < 2 || es[len(es)-2] != JobField || es[len(es)-1] != JobField {
		t.Fatalf("lane entries %v: want the two jobs on their own last", es)
	}
	// A route of the pack again (a stale reply): nothing moves.
	if n, _ := q.Route(ctx, Marketing, rs); n != 0 {
		t.Fatalf("routed %d of a pack let go", n)
	}
}

// TestPacksPutBackWhole: a restart and a takeover put a held pack back
// as the same pack, counting its jobs.
func TestPacksPutBackWhole(t *testing.T) {
	dead, rdb, tl := setup(t, "dead")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Pack: 4}
	for i := range 10 {
		_ = b.Add(packJob(i))
	}
	if _, err := dead.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	if ds := read(t, dead, Marketing); len(ds) != 10 {
		t.Fatalf("read %d", len(ds))
	}
	if n, err := New(rdb, dead.ks, "dead").RequeueOwn(ctx, Marketing); n != 10 || err != nil {
		t.Fatalf("requeued %d %v", n, err)
	}
	if ds := read(t, dead, Marketing); len(ds) != 10 || ds[0].Pack != 4 || ds[9].Pack != 2 {
		t.Fatalf("read after requeue %d", len(ds))
	}
	if err := dead.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	alive := New(rdb, dead.ks, "alive")
	if n, isAlive, err := alive.TakeOver(ctx, Marketing, "dead", 20*time.Millisecond); n != 10 || isAlive || err != nil {
		t.Fatalf("took over %d (alive %v) %v", n, isAlive, err)
	}
	ds := read(t, alive, Marketing)
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	sort.Strings(ids)
	if len(ids) != 10 || ds[0].Pack != 4 || ds[9].Pack != 2 {
		t.Fatalf("after takeover: %v", ids)
	}
}

// TestPackCountWithJobsBackAfterOthers: as the router calls Route, the
// jobs going back come after every routed one, so a pack's jobs are not
// next to each other in the call; each pack is still taken off the
// lane's count once, and the depth is the jobs put back.
func TestPackCountWithJobsBackAfterOthers(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	for _, from := range []int{0, 3} {
		b := &Batch{Lane: Marketing, Tally: tl, Pack: 64}
		for i := from; i < from+3; i++ {
			_ = b.Add(packJob(i))
		}
		if _, err := q.Enqueue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	ds := read(t, q, Marketing)
	if len(ds) != 6 || ds[0].StreamID == ds[3].StreamID || ds[0].Pack != 3 {
		t.Fatalf("read %+v", ds)
	}
	line := Line{Shard: 0, Lane: Marketing, Campaign: "x", Key: "fast"}
	rs := []Routed{
		{Delivery: ds[0], Line: line}, {Delivery: ds[1], Line: line}, {Delivery: ds[3], Line: line}, {Delivery: ds[4], Line: line},
		{Delivery: ds[2], Back: true}, {Delivery: ds[5], Back: true},
	}
	if n, err := q.Route(ctx, Marketing, rs); n != 6 || err != nil {
		t.Fatalf("routed %d %v", n, err)
	}
	if c := rdb.HGetAll(ctx, q.packs(0, Marketing)).Val(); c["entries"] != "0" || c["jobs"] != "0" {
		t.Fatalf("count of packs %v, want 0 and 0", c)
	}
	if n := laneLen(q, Marketing); n != 2 {
		t.Fatalf("depth %d, want the 2 jobs put back", n)
	}
}

// TestFreshPacksTakenBackWhenTheCheckpointMoved: a batch of new
// recipients (AddNew) in packs goes in as plain entries before its
// script (freshScript); a stale launcher's batch is refused and leaves
// the lane, its count of packs and the events as they were; the lane's
// group, which read past the entries taken back, counts no lag for them.
func TestFreshPacksTakenBackWhenTheCheckpointMoved(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	add := func(b *Batch, from, to int) {
		for i := from; i < to; i++ {
			if err := b.AddNew(packJob(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := &Batch{Lane: Marketing, Tally: tl, Pack: 64, Checkpoint: "151"}
	add(b, 0, 150)
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 150 {
		t.Fatalf("enqueue %+v %v", res, err)
	}
	if es := entries(t, q); len(es) != 3 || es[0] != PackField {
		t.Fatalf("entries %v, want 3 packs", es)
	}
	ds, _, err := q.Read(ctx, Marketing, 200)
	if err != nil || len(ds) != 150 {
		t.Fatalf("read %d %v", len(ds), err)
	}
	stale := &Batch{Lane: Marketing, Tally: tl, Pack: 64, Checkpoint: "251"} // read the checkpoints before b wrote
	add(stale, 150, 250)
	if _, err := q.Enqueue(ctx, stale); !errors.Is(err, ErrCheckpointMoved) {
		t.Fatalf("stale launcher: %v, want ErrCheckpointMoved", err)
	}
	if es := entries(t, q); len(es) != 3 {
		t.Fatalf("entries %v after the refused batch, want the first 3 packs", es)
	}
	if n := laneLen(q, Marketing); n != 150 {
		t.Fatalf("depth %d after the refused batch, want 150", n)
	}
	if evs := shardEvents(t, q); len(evs) != 150 {
		t.Fatalf("%d events after the refused batch, want 150", len(evs))
	}
	if c := counters(t, rdb, tl); c["total"] != "150" || c["checkpoint"] != "151" {
		t.Fatalf("counters %v", c)
	}
	// The first launcher goes on; everything is read and routed.
	b.Checkpoint = "251"
	add(b, 150, 250)
	if res, err := q.Enqueue(ctx, b); err != nil || res.Added != 100 {
		t.Fatalf("second batch %+v %v", res, err)
	}
	more, _, err := q.Read(ctx, Marketing, 200)
	if err != nil || len(more) != 100 || more[0].ID != "x/150" {
		t.Fatalf("read of the second batch %d %v", len(more), err)
	}
	routeAll(t, q, append(ds, more...))
	gs, err := rdb.XInfoGroups(ctx, q.Stream(0, Marketing)).Result()
	if err != nil || len(gs) != 1 || gs[0].Lag != 0 {
		t.Fatalf("groups %+v %v, want a lag of 0", gs, err)
	}
	if n := laneLen(q, Marketing); n != 0 {
		t.Fatalf("depth %d after routing every pack", n)
	}
	if evs := shardEvents(t, q); len(evs) != 250 {
		t.Fatalf("%d events, want 250", len(evs))
	}
}

// TestFreshPacksFailedAddIsAnError: when an XADD of a part's
// transaction fails (here the lane's key holds a string), the enqueue
// says so rather than counting the part as written.
func TestFreshPacksFailedAddIsAnError(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	if err := rdb.Del(ctx, q.Stream(0, Marketing)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, q.Stream(0, Marketing), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	b := &Batch{Lane: Marketing, Tally: tl, Pack: 64, Checkpoint: "11"}
	for i := range 10 {
		if err := b.AddNew(packJob(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Enqueue(ctx, b); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("enqueue into a string: %v, want the XADD's WRONGTYPE", err)
	}
}

// lineJobs counts the jobs in line l's entries, packs or not.
func lineJobs(t *testing.T, q *Queue, l Line) int {
	t.Helper()
	es, err := q.rdb.XRange(context.Background(), q.LineStream(l), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if p, ok := e.Values[PackField].(string); ok {
			n += strings.Count(p, "\n")
		} else {
			n++
		}
	}
	return n
}
