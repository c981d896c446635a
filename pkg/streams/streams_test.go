package streams

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func setup(t *testing.T, consumer string) (*Queue, *redis.Client, Tally) {
	t.Helper()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	q := New(rdb, ks, consumer)
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q, rdb, Tally{CheckpointField: "checkpoint", Shards: func(n int) Tally {
		return Tally{Counters: ks.In(n, "c", "x"), Records: ks.In(n, "r", "x"), CheckpointField: "checkpoint"}
	}}
}

// counters sums the tally's counters over the shards (the checkpoint:
// the highest).
func counters(t *testing.T, rdb *redis.Client, tl Tally) map[string]string {
	t.Helper()
	sum := map[string]int{}
	for n := 0; n < keyspace.Shards; n++ {
		m, err := rdb.HGetAll(context.Background(), tl.In(n).Counters).Result()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			x, _ := strconv.Atoi(v)
			if k == "checkpoint" {
				sum[k] = max(sum[k], x)
			} else {
				sum[k] += x
			}
		}
	}
	out := map[string]string{}
	for k, v := range sum {
		out[k] = strconv.Itoa(v)
	}
	return out
}

// campaignJob is the i-th job of campaign x; every one's recipient is in
// shard 0 (so jobs read back keep their order, and share lines).
func campaignJob(i int) *Job {
	return &Job{ID: fmt.Sprintf("x/%d", i), Campaign: "x", To: inShard(0, "u", "@example.test")[i], Lane: Marketing, Line: i + 2, First: time.Now().UnixMilli()}
}

// inShard lists the first 64 names prefix+N+suffix that are of shard.
func inShard(shard int, prefix, suffix string) []string {
	var out []string
	for i := 0; len(out) < 64; i++ {
		if s := fmt.Sprintf("%s%d%s", prefix, i, suffix); keyspace.ShardOf(s) == shard {
			out = append(out, s)
		}
	}
	return out
}

// enqueueAndRead enqueues campaign jobs 0..n-1 (all of shard 0's) into
// tl and reads them.
func enqueueAndRead(t *testing.T, q *Queue, tl Tally, n int) []Delivery {
	t.Helper()
	return enqueueAndReadFrom(t, q, tl, 0, n)
}

// enqueueAndReadFrom enqueues campaign jobs from..from+n-1 and reads them
// (n at most 10).
func enqueueAndReadFrom(t *testing.T, q *Queue, tl Tally, from, n int) []Delivery {
	t.Helper()
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := from; i < from+n; i++ {
		_ = b.Add(campaignJob(i))
	}
	if _, err := q.Enqueue(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return read(t, q, Marketing)
}

// read reads up to 10 new jobs of lane l, or fails.
func read(t *testing.T, q *Queue, l Lane) []Delivery {
	t.Helper()
	ds, _, err := q.Read(context.Background(), l, 10)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestEnqueueNeverQueuesAnAddressTwice(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl, Checkpoint: "4"}
	for i := 0; i < 3; i++ {
		if err := b.Add(campaignJob(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add(campaignJob(1)); err != nil { // duplicate row
		t.Fatal(err)
	}
	b.AddFinal(campaignJob(9), Record{Status: "suppressed"})
	res, err := q.Enqueue(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if res != (BatchResult{Added: 3, Final: 1, Duplicates: 1}) {
		t.Fatalf("result %+v", res)
	}
	// The same batch again (a launch that died before learning it landed).
	for i := 0; i < 3; i++ {
		_ = b.Add(campaignJob(i))
	}
	if res, _ := q.Enqueue(ctx, b); res.Added != 0 || res.Duplicates != 3 {
		t.Fatalf("re-sent batch: %+v", res)
	}
	if n := laneLen(q, Marketing); n != 3 {
		t.Fatalf("stream holds %d jobs, want 3", n)
	}
	c := counters(t, rdb, tl)
	if c["total"] != "4" || c["queued"] != "3" || c["suppressed"] != "1" || c["checkpoint"] != "4" {
		t.Fatalf("counters %v", c)
	}
}

func TestDeferredJobComesBackAndIsCountedOnce(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl}
	_ = b.Add(campaignJob(0))
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds, _, err := q.Read(ctx, Marketing, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %v %v", ds, err)
	}
	d := ds[0]
	next := d.Job
	next.Attempts++
	due := time.Now().Add(time.Minute)
	if s, err := q.Settle(ctx, d, tl, Record{Status: "deferred", Code: 451}, &next, due); err != nil || s != Recorded {
		t.Fatalf("settle deferred: %v %v", s, err)
	}
	if c := counters(t, rdb, tl); c["deferred"] != "1" || c["queued"] != "1" {
		t.Fatalf("after deferral %v", c)
	}
	if n := laneLen(q, Marketing); n != 0 {
		t.Fatalf("acked entry still in stream (%d)", n)
	}
	if n, _ := q.MoveDue(ctx, time.Now(), 100); n != 0 {
		t.Fatalf("moved %d jobs before they were due", n)
	}
	if n, _ := q.MoveDue(ctx, due, 100); n != 1 {
		t.Fatalf("moved %d due jobs, want 1", n)
	}
	ds = read(t, q, Marketing)
	if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].To != d.To {
		t.Fatalf("retry read %+v", ds)
	}
	if s, _ := q.Settle(ctx, ds[0], tl, Record{Status: "delivered", Code: 250}, nil, time.Time{}); s != Recorded {
		t.Fatalf("settle delivered: %v", s)
	}
	c := counters(t, rdb, tl)
	if c["delivered"] != "1" || c["deferred"] != "0" || c["queued"] != "0" {
		t.Fatalf("final counters %v", c)
	}
	rec, _ := DecodeRecord(rdb.HGet(ctx, tl.For(d.To).Records, d.To).Val())
	if rec.Status != "delivered" || rec.Code != 250 {
		t.Fatalf("record %+v", rec)
	}
}

func TestTakeOverOnlyFromASilentConsumer(t *testing.T) {
	dead, rdb, tl := setup(t, "dead")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := 0; i < 5; i++ {
		_ = b.Add(campaignJob(i))
	}
	if _, err := dead.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := dead.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	held := read(t, dead, Marketing)
	if len(held) != 5 {
		t.Fatalf("dead consumer read %d", len(held))
	}
	alive := New(rdb, dead.ks, "alive")
	if hs, err := alive.Holders(ctx, Marketing); err != nil || len(hs) != 1 || hs[0] != (Holder{Name: "dead", Pending: 5}) {
		t.Fatalf("holders %+v %v", hs, err)
	}
	if s, err := alive.Silent(ctx, time.Hour); err != nil || len(s) != 0 {
		t.Fatalf("silent %v %v", s, err)
	}
	if n, isAlive, err := alive.TakeOver(ctx, Marketing, "dead", time.Hour); n != 0 || !isAlive || err != nil {
		t.Fatalf("took %d (alive %v, %v) from a consumer that beat just now", n, isAlive, err)
	}
	time.Sleep(30 * time.Millisecond)
	if s, err := alive.Silent(ctx, 20*time.Millisecond); err != nil || len(s) != 1 || s[0] != "dead" {
		t.Fatalf("silent %v %v", s, err)
	}
	n, isAlive, err := alive.TakeOver(ctx, Marketing, "dead", 20*time.Millisecond)
	if err != nil || isAlive || n != 5 {
		t.Fatalf("took over %d (alive %v), %v; want 5", n, isAlive, err)
	}
	if err := alive.Forget(ctx, "dead", 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The silent consumer is gone from the group and the heartbeat hash.
	if hs, _ := alive.Holders(ctx, Marketing); len(hs) != 0 {
		t.Fatalf("holders after takeover %+v", hs)
	}
	if rdb.HExists(ctx, alive.Engines(), "dead").Val() {
		t.Fatal("heartbeat of the taken-over consumer left behind")
	}
	// Its jobs are back in line, new to any reader.
	got, _, err := alive.Read(ctx, Marketing, 10)
	if err != nil || len(got) != 5 {
		t.Fatalf("read after takeover %d %v", len(got), err)
	}
	// The dead consumer wakes up late: its settle must not count twice.
	if s, _ := dead.Settle(ctx, held[0], tl, Record{Status: "delivered"}, nil, time.Time{}); s != NotHeld {
		t.Fatalf("stale settle = %v, want NotHeld", s)
	}
	for _, d := range got {
		if s, _ := alive.Settle(ctx, d, tl, Record{Status: "delivered"}, nil, time.Time{}); s != Recorded {
			t.Fatalf("settle %v", s)
		}
	}
	if c := counters(t, rdb, tl); c["delivered"] != "5" || c["queued"] != "0" {
		t.Fatalf("counters %v", c)
	}
}

func TestTakeOverOfAConsumerWithoutHeartbeatWaitsForIdleJobs(t *testing.T) {
	old, rdb, tl := setup(t, "old")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl}
	_ = b.Add(campaignJob(0))
	if _, err := old.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	if ds := read(t, old, Marketing); len(ds) != 1 {
		t.Fatal("no job read")
	}
	alive := New(rdb, old.ks, "alive")
	if n, _, _ := alive.TakeOver(ctx, Marketing, "old", time.Hour); n != 0 {
		t.Fatalf("took %d jobs held for less than the silence", n)
	}
	time.Sleep(30 * time.Millisecond)
	if n, _, err := alive.TakeOver(ctx, Marketing, "old", 20*time.Millisecond); n != 1 || err != nil {
		t.Fatalf("took %d, %v", n, err)
	}
}

func TestPendingJobsAreReadBackAfterRestart(t *testing.T) {
	q, _, tl := setup(t, "e1")
	ctx := context.Background()
	b := &Batch{Lane: Transactional, Tally: tl}
	_ = b.Add(&Job{ID: "tx1", To: "a@example.test", Lane: Transactional})
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	if ds := read(t, q, Transactional); len(ds) != 1 {
		t.Fatal("no job read")
	}
	// Put back at a start (same consumer name): a new entry, read once
	// more, nothing pending.
	if n, err := New(q.rdb, q.ks, "e1").RequeueOwn(ctx, Transactional); n != 1 || err != nil {
		t.Fatalf("requeue %d %v", n, err)
	}
	if p := pendingOf(t, q, Transactional, "e1"); p != 0 {
		t.Fatalf("%d still pending after requeue", p)
	}
	if ds := read(t, q, Transactional); len(ds) != 1 || ds[0].ID != "tx1" {
		t.Fatalf("read after requeue %+v", ds)
	}
}

func TestStoredMessageJobLifecycle(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	j := &Job{ID: "tx-1", To: "a@example.test", Lane: Transactional, From: "app@sluice.test", First: time.Now().UnixMilli()}
	if err := q.AddMessage(ctx, j, tl, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := q.AddMessage(ctx, j, tl, []byte("again")); err == nil {
		t.Fatal("second AddMessage with the same id succeeded")
	}
	ds := read(t, q, Transactional)
	if len(ds) != 1 || !ds[0].HasMessage || ds[0].From != "app@sluice.test" {
		t.Fatalf("read %+v", ds)
	}
	if msg, err := q.Message(ctx, "tx-1"); err != nil || string(msg) != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("message %q %v", msg, err)
	}
	// Postponed by the throttle: back in the delayed set, no attempt counted.
	if ok, err := q.Postpone(ctx, ds[0], time.Now()); !ok || err != nil {
		t.Fatalf("postpone %v %v", ok, err)
	}
	if n, _ := q.MoveDue(ctx, time.Now().Add(time.Second), 10); n != 1 {
		t.Fatalf("moved %d", n)
	}
	ds = read(t, q, Transactional)
	if len(ds) != 1 || ds[0].Attempts != 0 {
		t.Fatalf("after postpone %+v", ds)
	}
	if c := counters(t, rdb, tl); c["queued"] != "1" || c["deferred"] != "" {
		t.Fatalf("postpone changed counters: %v", c)
	}
	if s, _ := q.Settle(ctx, ds[0], tl, Record{Status: "delivered"}, nil, time.Time{}); s != Recorded {
		t.Fatalf("settle %v", s)
	}
	if _, err := q.Message(ctx, "tx-1"); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("message still stored after delivery: %v", err)
	}
}

func TestParkUnparkAndCancelParked(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	ds := enqueueAndRead(t, q, tl, 4)
	sh := keyspace.ShardOf(campaignJob(0).To)
	park := q.ks.In(sh, "parked", "x")
	for _, d := range ds {
		if ok, err := q.Park(ctx, d, park); !ok || err != nil {
			t.Fatalf("park %v %v", ok, err)
		}
	}
	if n := laneLen(q, Marketing); n != 0 || rdb.LLen(ctx, park).Val() != 4 {
		t.Fatalf("stream %d, parked %d", n, rdb.LLen(ctx, park).Val())
	}
	if n, _ := q.Unpark(ctx, sh, Marketing, park, 2); n != 2 {
		t.Fatalf("unparked %d", n)
	}
	if n, _ := q.CancelParked(ctx, sh, park, tl, 100); n != 2 {
		t.Fatalf("cancelled %d", n)
	}
	if n, _ := q.CancelParked(ctx, sh, park, tl, 100); n != 0 {
		t.Fatalf("cancelled %d more from an empty list", n)
	}
	c := counters(t, rdb, tl)
	if c["queued"] != "2" || c["cancelled"] != "2" {
		t.Fatalf("counters %v", c)
	}
	back := read(t, q, Marketing)
	if len(back) != 2 || back[0].To != ds[0].To {
		t.Fatalf("unparked jobs read back: %+v", back)
	}
	rec, _ := DecodeRecord(rdb.HGet(ctx, tl.For(ds[3].To).Records, ds[3].To).Val())
	if rec.Status != "cancelled" {
		t.Fatalf("record of a cancelled job: %+v", rec)
	}
}

func TestAddMessagesIsAllOrNothing(t *testing.T) {
	q, rdb, tl := setup(t, "e1")
	ctx := context.Background()
	ids := inShard(5, "j", "")
	item := func(id, to string) Item {
		id = ids[id[1]-'0'] // j1, j2, j3: three ids of one shard
		return Item{Job: &Job{ID: id, To: to, Lane: Transactional, From: "a@sluice.test"}, Msg: []byte("m-" + id)}
	}
	if err := q.AddMessages(ctx, tl, []Item{item("j1", "a@example.test")}); err != nil {
		t.Fatal(err)
	}
	// j1 is taken: the whole batch must be refused, j2 and j3 included.
	err := q.AddMessages(ctx, tl, []Item{item("j2", "b@example.test"), item("j1", "c@example.test"), item("j3", "d@example.test")})
	if err == nil || !strings.Contains(err.Error(), ids[1]) {
		t.Fatalf("err = %v", err)
	}
	if n := laneLen(q, Transactional); n != 1 {
		t.Fatalf("%d jobs queued, want only j1", n)
	}
	if _, err := q.Message(ctx, ids[2]); !errors.Is(err, ErrNoMessage) {
		t.Fatal("a refused batch stored a message")
	}
	if err := q.AddMessages(ctx, tl, []Item{item("j2", "b@example.test"), item("j3", "d@example.test")}); err != nil {
		t.Fatal(err)
	}
	if c := counters(t, rdb, tl); c["total"] != "3" || c["queued"] != "3" {
		t.Fatalf("counters %v", c)
	}
	if m, _ := q.Message(ctx, ids[3]); string(m) != "m-"+ids[3] {
		t.Fatalf("message j3 = %q", m)
	}
}

// laneLen is how many entries lane l's streams hold.
func laneLen(q *Queue, l Lane) int64 {
	n, _, _ := q.Depth(context.Background(), l)
	return n
}

// pendingOf is how many jobs consumer holds in lane l's streams.
func pendingOf(t *testing.T, q *Queue, l Lane, consumer string) int64 {
	t.Helper()
	var n int64
	for sh := 0; sh < keyspace.Shards; sh++ {
		p, err := q.rdb.XPending(context.Background(), q.Stream(sh, l), Group).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += p.Consumers[consumer]
	}
	return n
}
