package intake

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// newQueues returns a streams queue ready for the transactional lane and
// an intake Queue writing through it.
func newQueues(t *testing.T, rdb redis.UniversalClient, ks keyspace.Space) (*streams.Queue, *Queue) {
	t.Helper()
	sq := streams.New(rdb, ks, "t")
	if err := sq.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sq, NewQueue(sq, ks)
}

// Issue #14: a transactional message's jobs are queued in its
// Message-ID's shard, and its Message-ID index entry is written in the
// same atomic step (one slot: slotcheck), so a report quoting only the
// Message-ID always finds them.
func TestEnqueueIndexesTheMessageIDInTheSameStep(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	hook := slotcheck.Attach(t, rdb)
	ks := keyspace.Space(redistest.Prefix(t))
	sq, q := newQueues(t, rdb, ks)
	for i := range 5 {
		mid := fmt.Sprintf("<order-%d.x@app.sluice.test>", i)
		to := []string{"a@example.test", "b@example.test", "c@example.test"}
		queued, err := q.Enqueue(ctx, "app@sluice.test", to, func(to string) ([]byte, error) {
			return []byte("Message-ID: " + mid + "\r\nTo: " + to + "\r\n\r\nhi\r\n"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		refs, err := verp.Find(ctx, rdb, ks, mid, q.now())
		if err != nil || len(refs) != len(to) {
			t.Fatalf("Message-ID %s indexed as %+v, %v: want its %d jobs", mid, refs, err, len(to))
		}
		for j, r := range refs {
			if r.ID != queued[j].ID || r.To != to[j] {
				t.Errorf("index entry %d: %+v, want %+v", j, r, queued[j])
			}
			if s := keyspace.ShardOf(r.ID); s != verp.IDShard(mid) {
				t.Errorf("job %s in shard %d, its Message-ID's index in %d", r.ID, s, verp.IDShard(mid))
			}
		}
	}
	if ds, _, err := sq.Read(ctx, streams.Transactional, 100); err != nil || len(ds) != 15 {
		t.Errorf("%d jobs queued (%v), want 15", len(ds), err)
	}
	if hook.Checked() == 0 {
		t.Fatal("slotcheck saw no command")
	}
}

// An index entry that cannot be written leaves nothing queued and the
// client told to retry; the retry queues and indexes every job once. For
// the jobs' own Message-ID (same step: the script writes the index
// first) and for another recipient's Message-ID in another shard
// (written before the step).
func TestEnqueueIndexFailureQueuesNothing(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	sq, q := newQueues(t, rdb, ks)
	at := time.Now() // the index expires with its day's records
	q.now = func() time.Time { return at }
	// Two Message-IDs in different shards: a's is the jobs' shard.
	midA := "<a.1@app.sluice.test>"
	midB := ""
	for i := 0; midB == ""; i++ {
		if m := fmt.Sprintf("<b.%d@app.sluice.test>", i); verp.IDShard(m) != verp.IDShard(midA) {
			midB = m
		}
	}
	build := func(to string) ([]byte, error) {
		mid := midA
		if to == "b@example.test" {
			mid = midB
		}
		return []byte("Message-ID: " + mid + "\r\nTo: " + to + "\r\n\r\nhi\r\n"), nil
	}
	to := []string{"a@example.test", "b@example.test"}
	for _, broken := range []string{midA, midB} {
		// A key of the wrong type: its HSET fails.
		key := verp.Entries(ks, map[string][]verp.Ref{broken: {{ID: "x", To: "y"}}}, at)[0].Key
		if err := rdb.Set(ctx, key, "not a hash", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if queued, err := q.Enqueue(ctx, "app@sluice.test", to, build); err == nil {
			t.Fatalf("index of %s unwritable: queued %+v without an error", broken, queued)
		}
		ds, _, err := sq.Read(ctx, streams.Transactional, 10)
		if err != nil || len(ds) != 0 {
			t.Fatalf("index of %s unwritable: %d jobs queued (%v), want none", broken, len(ds), err)
		}
		rdb.Del(ctx, key)
	}
	queued, err := q.Enqueue(ctx, "app@sluice.test", to, build)
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := sq.Read(ctx, streams.Transactional, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("retry: %d jobs queued (%v), want 2", len(ds), err)
	}
	for i, mid := range []string{midA, midB} {
		refs, err := verp.Find(ctx, rdb, ks, mid, at)
		if err != nil || len(refs) != 1 || refs[0].ID != queued[i].ID {
			t.Errorf("%s indexed as %+v (%v), want job %s", mid, refs, err, queued[i].ID)
		}
	}
}
