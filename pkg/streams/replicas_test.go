package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
)

// With WaitReplicas, a write is done once the master's replica has it;
// while the replica is frozen (SIGSTOP) it fails with ErrNotReplicated
// after the timeout and, being safe to repeat, goes through when it
// thaws. Without, the same write returns at once, replica or not.
func TestWaitReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := clustertest.Start(t)
	rdb := c.Client(t)
	ks := keyspace.Space("repl")
	tl := Tally{Shards: func(n int) Tally { return Tally{Counters: ks.In(n, "c", "x"), Records: ks.In(n, "r", "x")} }}
	// Three jobs of one shard, so of one master.
	var jobs []int
	s0 := keyspace.ShardOf(campaignJob(0).To)
	for i := 0; len(jobs) < 3; i++ {
		if keyspace.ShardOf(campaignJob(i).To) == s0 {
			jobs = append(jobs, i)
		}
	}
	key := tl.In(s0).Records
	// The plain queue talks to the master alone: a cluster client may
	// stall on the frozen node's slot map meanwhile.
	master, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// The replica is in sync on its side (Start); the master may list it
	// a moment later, and a queue that counted no replica then waits on
	// none for replicaCheck: the freeze below would go unnoticed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := replicasOf(ctx, master, true); err == nil && n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the master does not count its replica after 10 s")
		}
	}
	waiting, plain := New(rdb, ks, "w"), New(master, ks, "p")
	const timeout = 300 * time.Millisecond
	waiting.WaitReplicas(1, timeout)
	enqueue := func(q *Queue, i int) (time.Duration, error) {
		b := &Batch{Lane: Marketing, Tally: tl}
		if err := b.Add(campaignJob(jobs[i])); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, err := q.Enqueue(ctx, b)
		return time.Since(t0), err
	}
	// A replica in sync acknowledges within the timeout; on a loaded
	// machine the first WAITs after the cluster starts may not (the
	// replica's first sync), so a batch is retried, as launch does: it
	// is written once whatever the retries (checked at the end).
	inSync := func(i int, when string) {
		var err error
		for try := 0; try < 20; try++ {
			if _, err = enqueue(waiting, i); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %v", when, err)
	}
	inSync(0, "with a replica in sync")

	var victim clustertest.Master
	for _, m := range c.Masters(t) {
		if m.Has(keyspace.Slot(key)) {
			victim = m
		}
	}
	_, thaw := c.FreezeReplica(t, victim)
	// Within the cluster's node timeout: the replica still counts.
	took, err := enqueue(waiting, 2)
	if !errors.Is(err, ErrNotReplicated) || took < timeout {
		t.Errorf("replica frozen: %v after %v, want %v after %v", err, took, ErrNotReplicated, timeout)
	}
	if took, err := enqueue(plain, 1); err != nil || took > timeout/2 {
		t.Errorf("without WaitReplicas, replica frozen: %v after %v, want at once", err, took)
	}
	thaw()
	inSync(2, "again, replica thawed")
	if n, err := rdb.HLen(ctx, key).Result(); err != nil || n != 3 {
		t.Errorf("%d records, want 3 (the repeated batch once): %v", n, err)
	}
}
