package clustertest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// AddMaster starts one more node and joins it to c as a master serving no
// slot yet (`redis-cli --cluster add-node`), as an operator scaling out
// does before moving slots to it (MoveSlot). It returns its address once
// every node knows it.
func (c *Cluster) AddMaster(t testing.TB) string {
	t.Helper()
	s := c.startNode(t)
	seed := c.live()[0].Options().Addr
	add := []string{"--cluster", "add-node", s.Addr(), seed}
	if out, err := exec.Command("redis-cli", add...).CombinedOutput(); err != nil {
		t.Fatalf("clustertest: redis-cli %s: %v\n%s", strings.Join(add, " "), err, out)
	}
	c.await(t, s.Addr()+" to join", func(ctx context.Context) error {
		for _, node := range c.live() {
			nodes, err := node.ClusterNodes(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: CLUSTER NODES: %w", node.Options().Addr, err)
			}
			if !strings.Contains(nodes, " "+s.Addr()+"@") {
				return fmt.Errorf("%s does not know %s yet", node.Options().Addr, s.Addr())
			}
		}
		_, err := c.settled(ctx)
		return err
	})
	return s.Addr()
}

// keyGap is MoveSlot's pause after each key it moves: the slot stays
// split between the two nodes for a while, as it does while redis-cli
// moves a slot of many or big keys, so the clients meet ASK and TRYAGAIN.
const keyGap = 10 * time.Millisecond

// MoveSlot moves slot and its keys to the master at to while clients go
// on using them, by the steps `redis-cli --cluster reshard` takes: to
// imports the slot, its master migrates it, the keys go over (MIGRATE,
// one at a time, keyGap apart: each key is on one side or the other,
// whole), then every master learns the slot's new owner. Meanwhile a
// command finding its key gone gets ASK (go to the importing node), and
// one whose keys are split between the two TRYAGAIN; cluster clients
// follow both.
func (c *Cluster) MoveSlot(t testing.TB, slot int, to string) {
	t.Helper()
	ctx := context.Background()
	var from string
	for _, m := range c.Masters(t) {
		if m.Has(slot) {
			from = m.Addr
		}
	}
	if from == "" || from == to {
		t.Fatalf("clustertest: slot %d is served by %q, cannot move it to %s", slot, from, to)
	}
	src, dst := c.admin[from], c.admin[to]
	srcID, err := src.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatalf("clustertest: CLUSTER MYID on %s: %v", from, err)
	}
	dstID, err := dst.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatalf("clustertest: CLUSTER MYID on %s: %v", to, err)
	}
	do := func(node string, args ...any) {
		t.Helper()
		if err := c.admin[node].Do(ctx, args...).Err(); err != nil {
			t.Fatalf("clustertest: %v on %s: %v", args, node, err)
		}
	}
	do(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	do(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	host, port, _ := net.SplitHostPort(to)
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		if err != nil {
			t.Fatalf("clustertest: CLUSTER GETKEYSINSLOT %d on %s: %v", slot, from, err)
		}
		if len(keys) == 0 {
			break
		}
		do(from, "MIGRATE", host, port, keys[0], 0, 10000)
		time.Sleep(keyGap)
	}
	// The new owner first, then the old one (it stops redirecting with
	// ASK and answers MOVED), then the others, as redis-cli does.
	do(to, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	do(from, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	told := map[string]bool{from: true, to: true}
	for _, m := range c.Masters(t) {
		if !told[m.Addr] {
			told[m.Addr] = true
			do(m.Addr, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
		}
	}
	c.await(t, fmt.Sprintf("slot %d to be on %s everywhere", slot, to), func(ctx context.Context) error {
		ms, err := c.settled(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Has(slot) && m.Addr != to {
				return fmt.Errorf("slot %d on %s", slot, m.Addr)
			}
		}
		return nil
	})
}
