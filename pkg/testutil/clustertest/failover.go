package clustertest

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// KillMaster kills the i-th master in slot order with SIGKILL (a crash:
// what it has not replicated is lost) and returns it. Until a replica
// takes over (WaitFailover), commands for its slots fail.
func (c *Cluster) KillMaster(t testing.TB, i int) Master {
	t.Helper()
	ms := c.Masters(t)
	if i < 0 || i >= len(ms) {
		t.Fatalf("clustertest: no master %d (there are %d)", i, len(ms))
	}
	m := ms[i]
	if err := c.server(t, m.Addr).Kill(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.dead[m.Addr] = true
	c.killed = append(c.killed, m)
	c.mu.Unlock()
	return m
}

// WaitFailover waits until a replica of the last killed master serves its
// slots, every live node agrees and says cluster_state:ok, and every
// client made by Client reaches the new master; it returns the new master.
func (c *Cluster) WaitFailover(t testing.TB) Master {
	t.Helper()
	c.mu.Lock()
	if len(c.killed) == 0 {
		c.mu.Unlock()
		t.Fatal("clustertest: WaitFailover without KillMaster")
	}
	dead := c.killed[len(c.killed)-1]
	clients := c.clients
	c.mu.Unlock()
	var promoted Master
	c.await(t, "a replica to take over "+dead.Addr, func(ctx context.Context) error {
		ms, err := c.settled(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Has(dead.First) {
				if m.Addr == dead.Addr {
					return fmt.Errorf("slot %d still on the dead %s", dead.First, dead.Addr)
				}
				promoted = m
			}
		}
		return nil
	})
	probe := KeyIn(dead)
	for _, rdb := range clients {
		c.await(t, "a client to reach "+promoted.Addr, func(ctx context.Context) error {
			return rdb.Exists(ctx, probe).Err() // reads nothing; a failure reloads the slot map
		})
	}
	return promoted
}

// Revive starts the killed master m again, on its port and directory. It
// rejoins as a replica of the master that took over its slots; Revive
// returns once it is in sync.
func (c *Cluster) Revive(t testing.TB, m Master) {
	t.Helper()
	if err := c.server(t, m.Addr).Start(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	delete(c.dead, m.Addr)
	c.mu.Unlock()
	c.await(t, m.Addr+" to rejoin", func(ctx context.Context) error {
		_, err := c.settled(ctx)
		return err
	})
}

func (c *Cluster) server(t testing.TB, addr string) *redistest.Server {
	t.Helper()
	for _, s := range c.servers {
		if s.Addr() == addr {
			return s
		}
	}
	t.Fatalf("clustertest: no node %s", addr)
	return nil
}

// KeyIn returns a key whose hash slot m serves.
func KeyIn(m Master) string {
	for i := 0; ; i++ {
		k := "clustertest:probe:" + strconv.Itoa(i)
		if m.Has(keyspace.Slot(k)) {
			return k
		}
	}
}
