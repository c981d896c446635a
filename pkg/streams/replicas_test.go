package streams

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	tl := Tally{Counters: ks.Key("c", "x"), Records: ks.Key("r", "x")}
	waiting, plain := New(rdb, ks, "w"), New(rdb, ks, "p")
	const timeout = 300 * time.Millisecond
	waiting.WaitReplicas(1, timeout)
	enqueue := func(q *Queue, i int) (time.Duration, error) {
		b := &Batch{Lane: Marketing, Tally: tl}
		if err := b.Add(campaignJob(i)); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, err := q.Enqueue(ctx, b)
		return time.Since(t0), err
	}
	if _, err := enqueue(waiting, 0); err != nil {
		t.Fatalf("with a replica in sync: %v", err)
	}

	replica := replicaOf(t, rdb, tl.Counters)
	if err := syscall.Kill(replica, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(replica, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	if took, err := enqueue(plain, 1); err != nil || took > timeout/2 {
		t.Errorf("without WaitReplicas, replica frozen: %v after %v, want at once", err, took)
	}
	took, err := enqueue(waiting, 2)
	if !errors.Is(err, ErrNotReplicated) || took < timeout {
		t.Errorf("replica frozen: %v after %v, want %v after %v", err, took, ErrNotReplicated, timeout)
	}
	thaw()
	if _, err := enqueue(waiting, 2); err != nil {
		t.Errorf("again, replica thawed: %v", err)
	}
	if n, err := rdb.HLen(ctx, tl.Records).Result(); err != nil || n != 3 {
		t.Errorf("%d records, want 3 (the repeated batch once): %v", n, err)
	}
}

// replicaOf is the process id of the replica of key's master.
func replicaOf(t *testing.T, rdb *redis.ClusterClient, key string) int {
	t.Helper()
	ctx := context.Background()
	master, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	info, err := master.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`slave0:ip=([^,]+),port=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no replica in %s", info)
	}
	node := redis.NewClient(&redis.Options{Addr: m[1] + ":" + m[2]})
	defer node.Close()
	server, err := node.InfoMap(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(server["Server"]["process_id"])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
