package keyspace

import (
	"fmt"
	"testing"
)

func TestSlotMatchesRedis(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"foo": 12182, "123456789": 12739, "{user1000}.following": 3443} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestShardTagsSpreadOverSlotRanges(t *testing.T) {
	for _, s := range []Space{"sluice", "t1", "x.y"} {
		seen := map[string]bool{}
		for n := 0; n < Shards; n++ {
			tag := s.Tag(n)
			if seen[tag] {
				t.Fatalf("%s: tag %s twice", s, tag)
			}
			seen[tag] = true
			slot := Slot(s.In(n, "line", "x"))
			if lo, hi := n*16384/Shards, (n+1)*16384/Shards; slot < lo || slot >= hi {
				t.Errorf("%s shard %d: slot %d outside [%d,%d)", s, n, slot, lo, hi)
			}
		}
	}
	// Three masters with redis-cli's equal ranges get four shards each.
	per := map[int]int{}
	for n := 0; n < Shards; n++ {
		per[Slot(Space("sluice").Tag(n))*3/16384]++
	}
	if fmt.Sprint(per) != "map[0:4 1:4 2:4]" {
		t.Errorf("shards per master: %v", per)
	}
}

func TestShardOfIsStableAndCaseBlind(t *testing.T) {
	if ShardOf("Ann@Example.TEST") != ShardOf("ann@example.test") {
		t.Error("case changes the shard")
	}
	count := make([]int, Shards)
	for i := 0; i < 12000; i++ {
		count[ShardOf(fmt.Sprintf("user%d@example.test", i))]++
	}
	for n, c := range count {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d holds %d of 12000", n, c)
		}
	}
}
