package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// The cluster is made as production ones are: three masters owning equal
// contiguous ranges, each with a replica in sync.
func TestStartMakesThreeEqualMasters(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := Start(t)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	ms := c.Masters(t)
	want := []Master{{First: 0, Last: 5460}, {First: 5461, Last: 10922}, {First: 10923, Last: 16383}}
	if len(ms) != len(want) {
		t.Fatalf("masters %v, want 3", ms)
	}
	for i, m := range ms {
		if m.First != want[i].First || m.Last != want[i].Last {
			t.Errorf("master %d serves %d-%d, want %d-%d", i, m.First, m.Last, want[i].First, want[i].Last)
		}
	}
	replicas := 0
	for _, node := range c.live() {
		info, err := node.InfoMap(context.Background(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if r := info["Replication"]; r["role"] == "slave" && r["master_link_status"] == "up" {
			replicas++
		}
	}
	if replicas != 3 {
		t.Errorf("%d replicas in sync, want 3", replicas)
	}

	// keyspace.Slot is the slot the cluster computes, for the shard tags
	// and for keys with and without (odd) hash tags.
	ctx := context.Background()
	rdb := c.Client(t)
	ks := keyspace.Space("sluice")
	keys := []string{"", "a", "{}", "{}x", "x{}", "{a", "a}", "}{a}", "{a}{b}", "{{a}}", "foo{bar}baz",
		ks.Key("campaign", "42"), ks.Own("thr:gmail.com", "eng"), "café", "\x00\xff"}
	for n := range keyspace.Shards {
		keys = append(keys, ks.Tag(n), ks.In(n, "line", "m|c|k"), keyspace.Space("other").Tag(n))
	}
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("k%d", i), fmt.Sprintf("{user%d}:x", i))
	}
	for _, k := range keys {
		got, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(got) != keyspace.Slot(k) {
			t.Errorf("CLUSTER KEYSLOT %q = %d, keyspace.Slot = %d", k, got, keyspace.Slot(k))
		}
	}

	// The twelve shards land four on each master, and a key written
	// through the cluster client under a shard's tag is on that master.
	per := make([]int, len(ms))
	for n := range keyspace.Shards {
		key := ks.In(n, "probe")
		if err := rdb.Set(ctx, key, n, 0).Err(); err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if m.Has(keyspace.Slot(key)) {
				per[i]++
				if v, err := c.admin[m.Addr].Get(ctx, key).Int(); err != nil || v != n {
					t.Errorf("shard %d: %s on master %s = %d, %v", n, key, m.Addr, v, err)
				}
			}
		}
	}
	for i, n := range per {
		if n != keyspace.Shards/len(ms) {
			t.Errorf("master %d holds %d shards, want %d (all: %v)", i, n, keyspace.Shards/len(ms), per)
		}
	}
	if got := c.Keys(t, "{sluice.*}:probe"); fmt.Sprint(got) != "[4 4 4]" {
		t.Errorf("Keys per master = %v, want [4 4 4]", got)
	}
}

// Stats count what each master did, and Since isolates a run.
func TestStatsPerMaster(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := context.Background()
	rdb := c.Client(t)
	before := c.Stats(t)
	ms := c.Masters(t)
	for i := range 30 { // ten SETs on the first master, twenty on the last
		m := ms[0]
		if i >= 10 {
			m = ms[2]
		}
		if err := rdb.Set(ctx, fmt.Sprintf("{%s}:%d", KeyIn(m), i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	after := c.Stats(t)
	for i, want := range []int64{10, 0, 0} {
		d := after[i].Since(before[i])
		if i == 2 {
			want = 20
		}
		if d.Calls["set"] != want || d.Commands < want {
			t.Errorf("master %d: %d SETs of %d commands, want %d SETs (calls %v)", i, d.Calls["set"], d.Commands, want, d.Calls)
		}
		if d.CPU < 0 || after[i].CPU <= 0 || d.Busy < 0 || after[i].Busy <= 0 {
			t.Errorf("master %d: CPU %v (since %v), busy %v", i, after[i].CPU, d.CPU, d.Busy)
		}
	}
	if after[1].Keys != 0 || after[0].Keys+after[2].Keys < 30 {
		t.Errorf("keys per master: %d %d %d", after[0].Keys, after[1].Keys, after[2].Keys)
	}
}

// kill -9 of a master: its replica takes over, keeps what was replicated,
// and the same client writes to the dead master's slots again.
func TestFailover(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := context.Background()
	rdb := c.Client(t)
	victim := c.Masters(t)[1]
	key := KeyIn(victim)
	if err := rdb.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT on the master that holds key: the write is on its replica.
	node, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := node.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas, %v", n, err)
	}

	start := time.Now()
	dead := c.KillMaster(t, 1)
	if dead != victim {
		t.Fatalf("killed %v, want %v", dead, victim)
	}
	promoted := c.WaitFailover(t)
	t.Logf("failover in %v", time.Since(start).Round(time.Millisecond))
	if promoted.Addr == dead.Addr || promoted.First != dead.First || promoted.Last != dead.Last {
		t.Fatalf("promoted %v for dead %v", promoted, dead)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "before" {
		t.Errorf("replicated write after failover: %q, %v", v, err)
	}
	if err := rdb.Set(ctx, key, "after", 0).Err(); err != nil {
		t.Fatalf("write to the dead master's slots after failover: %v", err)
	}
	if v, err := c.admin[promoted.Addr].Get(ctx, key).Result(); err != nil || v != "after" {
		t.Errorf("on the promoted master: %q, %v", v, err)
	}

	// Back again, the old master is a replica of the new one.
	c.Revive(t, dead)
	info, err := c.admin[dead.Addr].InfoMap(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	if r := info["Replication"]; r["role"] != "slave" || !strings.HasSuffix(promoted.Addr, ":"+r["master_port"]) {
		t.Errorf("revived %s: role %s of port %s, want replica of %s", dead.Addr, r["role"], r["master_port"], promoted.Addr)
	}
	if ms := c.Masters(t); ms[1].Addr != promoted.Addr {
		t.Errorf("masters after revival %v", ms)
	}
}

// A master added to the cluster takes over a slot with its keys while a
// client keeps writing to them: every write lands once, all of them end on
// the new master and the client reaches it by itself.
func TestMoveSlotToAddedMaster(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := context.Background()
	rdb := c.Client(t)
	const tag = "{moving}"
	for i := range 50 {
		if err := rdb.Set(ctx, fmt.Sprintf("%s:k%d", tag, i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan int)
	stop := make(chan struct{})
	go func() { // INCR one counter and one of the moving keys, in one slot
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := rdb.Eval(ctx, "redis.call('INCR', KEYS[1]); return redis.call('INCR', KEYS[2])", []string{tag + ":count", fmt.Sprintf("%s:k%d", tag, n%50)}).Err()
			if err != nil {
				t.Errorf("write %d while the slot moves: %v", n, err)
				return
			}
			n++
		}
	}()
	added := c.AddMaster(t)
	slot := keyspace.Slot(tag)
	c.MoveSlot(t, slot, added)
	// The client met the slot split between the two nodes.
	if n := c.Replied(t, "TRYAGAIN"); n == 0 {
		t.Error("no TRYAGAIN while the slot moved: the client never met it split")
	}
	time.Sleep(50 * time.Millisecond) // a few writes on the new master too
	close(stop)
	n := <-done
	if n == 0 {
		t.Fatal("no write went through")
	}
	if v, err := c.admin[added].Get(ctx, tag+":count").Int(); err != nil || v != n {
		t.Errorf("counter on the new master %d, %v; want %d writes", v, err, n)
	}
	if got, err := c.admin[added].ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || got != 51 {
		t.Errorf("keys in slot %d on the new master: %d, %v; want 51", slot, got, err)
	}
	for _, m := range c.Masters(t) {
		if m.Has(slot) && m.Addr != added {
			t.Errorf("slot %d still served by %s", slot, m.Addr)
		}
	}
}
