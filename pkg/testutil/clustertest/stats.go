package clustertest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stats are one master's figures: how much data it holds and how much
// work it has done. Counters run from the node's start; Since takes the
// difference over a run.
type Stats struct {
	Master
	Keys     int64         // DBSIZE
	Commands int64         // total_commands_processed
	CPU      time.Duration // used_cpu_sys + used_cpu_user
	// Busy is the time spent executing commands (INFO commandstats usec,
	// summed; a script counts with all it does), as bench's redis-µs/msg.
	Busy  time.Duration
	Calls map[string]int64 // calls per command (INFO commandstats: "set", "evalsha", "cluster|info"...)
}

// Stats returns every master's figures, in slot order.
func (c *Cluster) Stats(t testing.TB) []Stats {
	t.Helper()
	ctx := context.Background()
	var out []Stats
	for _, m := range c.Masters(t) {
		node := c.admin[m.Addr]
		info, err := node.InfoMap(ctx, "stats", "cpu", "commandstats").Result()
		if err != nil {
			t.Fatalf("clustertest: %s: INFO: %v", m.Addr, err)
		}
		keys, err := node.DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("clustertest: %s: DBSIZE: %v", m.Addr, err)
		}
		s := Stats{Master: m, Keys: keys, Calls: map[string]int64{}}
		s.Commands, _ = strconv.ParseInt(info["Stats"]["total_commands_processed"], 10, 64)
		s.CPU = seconds(info["CPU"]["used_cpu_sys"]) + seconds(info["CPU"]["used_cpu_user"])
		for k, v := range info["Commandstats"] { // cmdstat_set: calls=3,usec=12,...
			var calls, usec int64
			if _, err := fmt.Sscanf(v, "calls=%d,usec=%d", &calls, &usec); err != nil {
				t.Fatalf("clustertest: %s: INFO commandstats %s:%s: %v", m.Addr, k, v, err)
			}
			s.Calls[strings.TrimPrefix(k, "cmdstat_")] = calls
			s.Busy += time.Duration(usec) * time.Microsecond
		}
		out = append(out, s)
	}
	return out
}

// Since is s less the counters of before, the same node's earlier Stats:
// the commands, calls and CPU of the time between. Keys stays as in s.
func (s Stats) Since(before Stats) Stats {
	d := s
	d.Commands -= before.Commands
	d.CPU -= before.CPU
	d.Busy -= before.Busy
	d.Calls = map[string]int64{}
	for k, v := range s.Calls {
		if n := v - before.Calls[k]; n != 0 {
			d.Calls[k] = n
		}
	}
	return d
}

// Keys counts each master's keys matching the glob pattern (SCAN MATCH on
// every master), in slot order.
func (c *Cluster) Keys(t testing.TB, pattern string) []int64 {
	t.Helper()
	ctx := context.Background()
	var out []int64
	for _, m := range c.Masters(t) {
		var n int64
		iter := c.admin[m.Addr].Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		if err := iter.Err(); err != nil {
			t.Fatalf("clustertest: %s: SCAN: %v", m.Addr, err)
		}
		out = append(out, n)
	}
	return out
}

func seconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

// Replied counts the error replies of kind (INFO errorstats: "TRYAGAIN",
// "ERR"...) that c's live nodes have sent since they started.
func (c *Cluster) Replied(t testing.TB, kind string) int64 {
	t.Helper()
	var n int64
	for _, node := range c.live() {
		info, err := node.InfoMap(context.Background(), "errorstats").Result()
		if err != nil {
			t.Fatalf("clustertest: %s: INFO errorstats: %v", node.Options().Addr, err)
		}
		v := info["Errorstats"]["errorstat_"+kind] // count=6
		k, _ := strconv.ParseInt(strings.TrimPrefix(v, "count="), 10, 64)
		n += k
	}
	return n
}
