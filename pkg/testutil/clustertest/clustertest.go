// Package clustertest starts a real Redis Cluster for a test or a
// benchmark: three masters and three replicas, redis-server processes on
// free loopback ports (redistest servers with cluster-enabled), joined by
// `redis-cli --cluster create --cluster-replicas 1`, so the masters own
// equal contiguous slot ranges as a production cluster made that way does.
//
//	c := clustertest.Start(t)
//	rdb := c.Client(t)                   // or config.Redis{Cluster: c.Addrs()}
//	m := c.KillMaster(t, 1)              // kill -9
//	c.WaitFailover(t)                    // its replica serves m's slots
//
// Start returns once every node reports cluster_state:ok, all agree on the
// slot map and every replica is in sync. The node timeout is short
// (NodeTimeout), so a failover takes a few seconds. Every process and
// directory is gone when the test ends.
package clustertest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// NodeTimeout is the cluster-node-timeout: a master silent this long is
// suspected, and one of its replicas takes over a second or two later.
const NodeTimeout = time.Second

// nodes is masters plus one replica each.
const nodes = 6

// Options configure Start.
type Options struct {
	// AOF turns the append-only file on (appendfsync everysec) on every
	// node, as production runs.
	AOF bool
	// NoReplicas starts three masters without replicas (benchmarks that
	// separate the cost of replication).
	NoReplicas bool
	// OneNode starts one master holding every slot, without a replica
	// (benchmarks that separate what cluster mode itself costs from
	// what sharding saves).
	OneNode bool
	// NodeTimeout is the cluster-node-timeout (NodeTimeout when zero).
	// Every node pings each other one at least every half of it, so
	// benchmarks that fail no node take Redis's default, 15 s.
	NodeTimeout time.Duration
}

// Cluster is a running Redis Cluster of one test's own.
type Cluster struct {
	servers []*redistest.Server
	opts    redistest.Options        // every node's (AddMaster starts one more alike)
	admin   map[string]*redis.Client // one per node, by address

	mu      sync.Mutex
	dead    map[string]bool
	killed  []Master
	clients []*redis.ClusterClient
}

// Master is a master node and the slots it serves (one contiguous range).
type Master struct {
	Addr        string
	First, Last int
}

// Has reports whether m serves slot.
func (m Master) Has(slot int) bool { return m.First <= slot && slot <= m.Last }

// Start starts a cluster of three masters and three replicas for t, or
// fails the test (redis-server and redis-cli must be on PATH; `make test`
// installs them).
func Start(t testing.TB) *Cluster { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("clustertest: redis-cli not found in PATH (apt-get install redis-server brings it): %v", err)
	}
	c := &Cluster{admin: map[string]*redis.Client{}, dead: map[string]bool{}}
	timeout := NodeTimeout
	if o.NodeTimeout > 0 {
		timeout = o.NodeTimeout
	}
	args := []string{
		"--cluster-node-timeout", strconv.Itoa(int(timeout / time.Millisecond)),
		"--cluster-replica-validity-factor", "0", // any replica may take over, however long its link was down
		"--repl-diskless-sync-delay", "0", // replicas sync at once, not after 5 s
	}
	n, replicas, masters := nodes, "1", nodes/2
	switch {
	case o.OneNode:
		n, masters = 1, 1
	case o.NoReplicas:
		n, replicas = nodes/2, "0"
	}
	c.opts = redistest.Options{AOF: o.AOF, Cluster: true, Args: args}
	for range n {
		c.startNode(t)
	}
	if o.OneNode {
		// redis-cli --cluster create wants three masters at least.
		if err := c.admin[c.servers[0].Addr()].Do(context.Background(), "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
			t.Fatalf("clustertest: CLUSTER ADDSLOTSRANGE 0 16383: %v", err)
		}
	} else {
		create := append(append([]string{"--cluster", "create"}, c.Addrs()...), "--cluster-replicas", replicas, "--cluster-yes")
		if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
			t.Fatalf("clustertest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
		}
	}
	c.await(t, "the cluster to form", func(ctx context.Context) error {
		ms, err := c.settled(ctx)
		if err == nil && len(ms) != masters {
			err = fmt.Errorf("%d masters, want %d", len(ms), masters)
		}
		return err
	})
	return c
}

// startNode starts one more node, not yet in the cluster.
func (c *Cluster) startNode(t testing.TB) *redistest.Server {
	s := redistest.NewServer(t, c.opts)
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.admin[s.Addr()] = s.Client(t)
	c.mu.Unlock()
	return s
}

// Addrs are every node's host:port, seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Client returns a cluster client of c with the engine's options
// (config.Redis.ClusterOptions), closed at test end. WaitFailover makes
// sure it has seen the new master before returning.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	rdb := redis.NewClusterClient(config.Redis{Cluster: c.Addrs()}.ClusterOptions())
	t.Cleanup(func() { _ = rdb.Close() })
	c.mu.Lock()
	c.clients = append(c.clients, rdb)
	c.mu.Unlock()
	return rdb
}

// Masters are the masters, in slot order, as the live nodes see them.
func (c *Cluster) Masters(t testing.TB) []Master {
	t.Helper()
	ms, err := c.masters(context.Background(), c.live()[0])
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return ms
}

func (c *Cluster) masters(ctx context.Context, node *redis.Client) ([]Master, error) {
	slots, err := node.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	var ms []Master
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			return nil, fmt.Errorf("slots %d-%d have no node", s.Start, s.End)
		}
		ms = append(ms, Master{Addr: s.Nodes[0].Addr, First: int(s.Start), Last: int(s.End)})
	}
	slices.SortFunc(ms, func(a, b Master) int { return a.First - b.First })
	return ms, nil
}

// live are the admin clients of the nodes not killed.
func (c *Cluster) live() []*redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*redis.Client
	for _, s := range c.servers {
		if !c.dead[s.Addr()] {
			out = append(out, c.admin[s.Addr()])
		}
	}
	return out
}

// settled checks that every live node says cluster_state:ok, all see the
// same masters covering every slot, and every replica is in sync with its
// master. It returns the masters.
func (c *Cluster) settled(ctx context.Context) ([]Master, error) {
	var first []Master
	for _, node := range c.live() {
		addr := node.Options().Addr
		info, err := node.ClusterInfo(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return nil, fmt.Errorf("%s: cluster_state not ok", addr)
		}
		ms, err := c.masters(ctx, node)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		if first == nil {
			first = ms
		} else if !slices.Equal(ms, first) {
			return nil, fmt.Errorf("%s sees masters %v, another node %v", addr, ms, first)
		}
		if err := inSync(ctx, node); err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
	}
	covered := 0
	for _, m := range first {
		covered += m.Last - m.First + 1
	}
	if covered != 16384 {
		return nil, fmt.Errorf("masters %v cover %d of 16384 slots", first, covered)
	}
	return first, nil
}

// inSync is nil for a master, and for a replica whose link is up and whose
// first sync is done.
func inSync(ctx context.Context, node *redis.Client) error {
	info, err := node.InfoMap(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication: %w", err)
	}
	r := info["Replication"]
	if r["role"] != "slave" {
		return nil
	}
	if r["master_link_status"] != "up" || r["master_sync_in_progress"] != "0" {
		return fmt.Errorf("replica of %s:%s not in sync (link %s, syncing %s)",
			r["master_host"], r["master_port"], r["master_link_status"], r["master_sync_in_progress"])
	}
	return nil
}

// await polls ok until it returns nil, or fails the test after 30 s with
// its last error.
func (c *Cluster) await(t testing.TB, what string, ok func(context.Context) error) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ok(ctx)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: waited 30s for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
