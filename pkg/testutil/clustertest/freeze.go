package clustertest

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var replicaLine = regexp.MustCompile(`slave0:ip=([^,]+),port=(\d+)`)

// FreezeReplica stops the replica of master m with SIGSTOP — a replica
// cut off: it neither reads its replication stream nor acknowledges it,
// while the cluster still counts it until the node timeout — and returns
// once it is stopped. thaw (SIGCONT) starts it again; the test's end does
// if nothing did. Cut also closes m's link to it, so what m writes from
// then on is not even in the kernel's buffers on its way: a kill of m
// then loses it.
func (c *Cluster) FreezeReplica(t testing.TB, m Master) (cut, thaw func()) {
	t.Helper()
	ctx := context.Background()
	info, err := c.admin[m.Addr].Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("clustertest: %s: INFO replication: %v", m.Addr, err)
	}
	r := replicaLine.FindStringSubmatch(info)
	if r == nil {
		t.Fatalf("clustertest: %s has no replica", m.Addr)
	}
	node := c.admin[r[1]+":"+r[2]]
	if node == nil {
		t.Fatalf("clustertest: replica %s:%s is no node of this cluster", r[1], r[2])
	}
	server, err := node.InfoMap(ctx, "server").Result()
	if err != nil {
		t.Fatalf("clustertest: %s: INFO server: %v", node.Options().Addr, err)
	}
	pid, err := strconv.Atoi(server["Server"]["process_id"])
	if err != nil {
		t.Fatalf("clustertest: %s: process_id: %v", node.Options().Addr, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, pid)
	var once sync.Once
	thaw = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	cut = func() {
		if err := c.admin[m.Addr].ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
			t.Errorf("clustertest: %s: CLIENT KILL TYPE replica: %v", m.Addr, err)
		}
	}
	return cut, thaw
}

// waitStopped returns once process pid is stopped (state T in /proc): a
// signal is delivered, not yet obeyed, when kill returns.
func waitStopped(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		// "pid (comm) STATE ...": comm may hold spaces, so from the last ")".
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i > 0 && i+2 < len(stat) && stat[i+2] == 'T' {
			return
		}
	}
	t.Fatalf("clustertest: process %d not stopped 5s after SIGSTOP", pid)
}
