package clustere2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
)

// TestRebalanceSpreadsShards: growing a cluster the way Redis documents
// it — add empty masters, then `redis-cli --cluster rebalance
// --cluster-use-empty-masters` — gives every master an equal number of
// a deployment's twelve shards (the salts of keyspace put each shard in
// the middle of its twelfth of the slots, and rebalance moves the slots
// at the start of each master's range).
func TestRebalanceSpreadsShards(t *testing.T) {
	t.Parallel()
	c := clustertest.StartWith(t, clustertest.Options{NoReplicas: true})
	for _, grow := range []int{1, 2} { // 3 → 4 → 6 masters
		for range grow {
			c.AddMaster(t)
		}
		seed := c.Addrs()[0]
		args := []string{"--cluster", "rebalance", seed, "--cluster-use-empty-masters"}
		if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
			t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		masters := c.Masters(t) // a slot range each: a master may serve several
		nodes := len(uniqueAddrs(masters))
		for _, prefix := range []keyspace.Space{"sluice", "t1", "x.y"} {
			per := map[string][]int{}
			for n := range keyspace.Shards {
				slot := keyspace.Slot(prefix.Tag(n))
				for _, m := range masters {
					if m.Has(slot) {
						per[m.Addr] = append(per[m.Addr], n)
					}
				}
			}
			var counts []int
			for _, shards := range per {
				counts = append(counts, len(shards))
			}
			slices.Sort(counts)
			t.Logf("%q after rebalance: shards by master %v", prefix, per)
			want := keyspace.Shards / nodes
			if len(per) != nodes || counts[0] != want || counts[len(counts)-1] != want {
				t.Errorf("%q on %d masters: shards by master %v, want %d each", prefix, nodes, fmt.Sprint(per), want)
			}
		}
	}
}

// uniqueAddrs are the masters' addresses, each once.
func uniqueAddrs(ms []clustertest.Master) []string {
	var out []string
	for _, m := range ms {
		if !slices.Contains(out, m.Addr) {
			out = append(out, m.Addr)
		}
	}
	return out
}
