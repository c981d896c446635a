package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// BenchmarkCluster20k (issue #12, acceptance 3) delivers 20,000 recipients
// several ways in one run and prints, for each, the delivered msg/s and the
// redis-server CPU per delivered message on each master (INFO cpu, user +
// sys, which counts what commandstats does not: I/O, replication, the
// event loop):
//
//   - one-redis: one engine on one redis-server (no replica);
//   - cluster: two engines on the 3-master cluster (each with a replica);
//   - cluster-wait1: the same with redis.wait_replicas 1 (the cost of
//     WAIT after every settle, route, take and launch batch).
//
// Four more runs separate what the cluster adds: one-redis-replica (the
// baseline with a replica, as each master has), cluster-1engine (one
// engine: the second engine's polling and smaller batches), and
// cluster-noreplica, cluster-noreplica-1engine (three masters without
// replicas: the cost of feeding them), and one-node-cluster (one engine on
// one redis-server in cluster mode holding every slot: what cluster mode
// itself costs, apart from the sharding).
//
// On two cores the total may not rise (the engines, six redis-servers and
// the receiver share them); what the sharding of issue #12 must bring is
// the CPU per message on each master falling to about a third (it falls
// to about half: see README, Redis Cluster, and BENCHMARKS.md for why).
// Each master's line also says its user CPU, round trips (requests
// read), context switches of its main thread and the replication stream
// it fed its replica, per message. The bench waits for the sink to have
// every message before it reads the campaign's status (BENCH_STATUSPOLL=1:
// from the start, every 20 ms, as before; on the cluster every read is a
// round trip on each master). Then three more pairs of one-redis and
// cluster, one after the other, and the median of the busiest master's
// CPU ÷ one Redis's (pairs).
//
// BENCH_CMDSTATS=1 adds each master's commands per message and its time
// in them; BENCH_LAUNCHONLY=1 launches the campaign and prints each
// master's CPU per recipient for the launch alone (no engine runs: the
// same scripts on the same shards, each master a third of them);
// BENCH_RTTRACE=DIR writes the engines' round trips to each node
// by what they carry into DIR, a file a run. BENCH_N=4000 runs fewer
// recipients; with BENCH_CALLGRIND=1 (every
// redis-server under valgrind --tool=callgrind, see BENCHMARKS.md) each
// line also says the user-space instructions per message on each master,
// counted from just before the launch to the end of the delivery, and
// what each master retires per second while the engines idle after it.
func BenchmarkCluster20k(b *testing.B) {
	for _, v := range clusterVariants {
		b.Run(v.name, func(b *testing.B) { benchCluster(b, v) })
	}
	// The ratio the acceptance names, busiest master ÷ one Redis, taken
	// from pairs run one after the other: a single pair's varies by a
	// third with what else the two cores are doing at that moment.
	var ratios []float64
	for i := range clusterPairs {
		var one, cl clusterRun
		b.Run(fmt.Sprintf("pair%d/one-redis", i+1), func(b *testing.B) { one = benchCluster(b, clusterVariants[0]) })
		b.Run(fmt.Sprintf("pair%d/cluster", i+1), func(b *testing.B) { cl = benchCluster(b, clusterVariants[2]) })
		if one.busiest > 0 && cl.busiest > 0 {
			ratios = append(ratios, cl.busiest/one.busiest)
		}
	}
	b.Run("pairs", func(b *testing.B) {
		if len(ratios) == 0 {
			b.Skip("no pair ran")
		}
		slices.Sort(ratios)
		med := ratios[len(ratios)/2]
		b.Logf("busiest master of 2 engines on 3 masters ÷ 1 engine on one Redis, redis CPU per message: %.2f (median of %v)", med, ratios)
		b.ReportMetric(med, "busiest-master÷one-redis")
	})
}

// clusterPairs is how many one-redis, cluster pairs BenchmarkCluster20k
// runs for its ratio.
const clusterPairs = 3

// clusterVariant is one way BenchmarkCluster20k delivers its campaign.
type clusterVariant struct {
	name    string
	cluster bool                // on a cluster started with opts, else on the package's redis-server
	opts    clustertest.Options // the cluster's
	replica bool                // one Redis with a replica of its own, as each master of the cluster has
	engines int
	wait    int // redis.wait_replicas
}

// clusterVariants are BenchmarkCluster20k's runs: one-redis first and
// cluster third (the pairs run them).
var clusterVariants = []clusterVariant{
	{name: "one-redis", engines: 1},
	{name: "one-redis-replica", replica: true, engines: 1},
	{name: "cluster", cluster: true, engines: 2},
	{name: "cluster-1engine", cluster: true, engines: 1},
	{name: "cluster-noreplica", cluster: true, opts: clustertest.Options{NoReplicas: true}, engines: 2},
	{name: "cluster-noreplica-1engine", cluster: true, opts: clustertest.Options{NoReplicas: true}, engines: 1},
	{name: "cluster-wait1", cluster: true, engines: 2, wait: 1},
	{name: "one-node-cluster", cluster: true, opts: clustertest.Options{OneNode: true}, engines: 1},
}

// clusterRun is what one run of a variant measured: redis CPU per
// delivered message, µs, on the busiest master and on all of them.
type clusterRun struct{ busiest, all float64 }

// masterLoad is one master's CPU time, reads of requests (round trips)
// and replication stream written so far (INFO cpu, stats, replication).
type masterLoad struct {
	addr  string
	cpu   time.Duration
	reads int64
	repl  int64 // master_repl_offset: bytes of the stream fed to its replica
	pid   string
	user  time.Duration    // the user-space part of cpu
	calls map[string]int64 // INFO commandstats calls, by command
	usec  map[string]int64 // INFO commandstats usec, by command
	csw   int64            // context switches of its main thread (voluntary and not)
}

// benchCluster runs one variant.
func benchCluster(b *testing.B, v clusterVariant) (run clusterRun) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && v > 0 {
		n = v // a smaller run, for redis-server under callgrind
	}
	grind := os.Getenv("BENCH_CALLGRIND") != ""
	for range b.N {
		ctx := context.Background()
		srv := smtptest.Start(b, smtptest.Options{Discard: true})
		path := enginetest.Campaign(b, b.TempDir(), "bench", n, "example.test")
		var rdb redis.UniversalClient
		var c *clustertest.Cluster
		prefix, single := redistest.Prefix(b), redistest.Addr()
		switch {
		case v.cluster:
			o := v.opts
			o.NodeTimeout = benchNodeTimeout
			c = clustertest.StartWith(b, o)
			rdb = c.Client(b)
		case v.replica:
			// A server of its own: one that has had a replica keeps
			// feeding its replication backlog (for an hour), which the
			// package's server would pay in every later run.
			m := redistest.NewServer(b, redistest.Options{})
			startReplica(b, m.Addr())
			rdb, single = m.Client(b), m.Addr()
		default:
			rdb = redistest.Client(b)
		}
		ks := keyspace.Space(prefix)
		before := loads(b, c, single) // the launch's work counts too
		if grind {
			for _, m := range before {
				callgrind(b, "-z", m.pid)
			}
		}
		if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{WaitReplicas: v.wait}); err != nil {
			b.Fatal(err)
		}
		if os.Getenv("BENCH_LAUNCHONLY") != "" {
			after := loads(b, c, single)
			var per []string
			var total time.Duration
			for i := range after {
				cpu, u := after[i].cpu-before[i].cpu, after[i].user-before[i].user
				per = append(per, fmt.Sprintf("%.2f (user %.2f)", perMsg(cpu, n), perMsg(u, n)))
				total += cpu
			}
			b.Logf("launch only: redis CPU µs per recipient on each master: %s; all %.2f", strings.Join(per, ", "), perMsg(total, n))
			continue
		}
		var trips *tripTrace
		if os.Getenv("BENCH_RTTRACE") != "" {
			trips = &tripTrace{}
		}
		start := time.Now()
		for i := range v.engines {
			cfg := enginetest.Config(prefix, srv.Addr)
			cfg.Delivery.Workers = 64
			cfg.Delivery.Consumer = "bench" + strconv.Itoa(i+1)
			if v.cluster {
				cfg.Redis.Cluster = c.Addrs()
				cfg.Redis.WaitReplicas = v.wait
			} else {
				cfg.Redis.URL = "redis://" + single
			}
			enginetest.StartWith(b, cfg, func(d *engine.Deps) {
				if trips != nil {
					trips.attach(d.Redis)
				}
			})
		}
		if os.Getenv("BENCH_STATUSPOLL") == "" {
			// Watch the sink first: the campaign's status, read every
			// 20 ms, is a round trip on every master (its 12 shards'
			// counters), a load of the bench's own that one Redis takes
			// once per read and every master of the cluster in full.
			for deadline := time.Now().Add(5 * time.Minute); srv.Count() < n && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
		}
		s := enginetest.WaitFinished(b, store.New(rdb, ks), "bench", 5*time.Minute)
		if s.Delivered != int64(n) || srv.Count() != n {
			b.Fatalf("delivered %d, sink got %d; want %d", s.Delivered, srv.Count(), n)
		}
		took := time.Since(start)
		after := loads(b, c, single)
		if trips != nil {
			// In a file: a benchmark's log is cut after a few lines.
			f := filepath.Join(os.Getenv("BENCH_RTTRACE"), strings.ReplaceAll(b.Name(), "/", "_")+".txt")
			if err := os.WriteFile(f, []byte(trips.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			b.Logf("the engines' round trips, by node and step: %s", f)
		}
		var instr []int64 // per master, launch and delivery
		if grind {
			for _, m := range after {
				instr = append(instr, instructions(b, m.pid))
				callgrind(b, "--dump="+b.Name(), m.pid) // for callgrind_annotate; zeroes the counts
			}
		}
		var per []string
		var most, total, user time.Duration
		var reads, repl, allInstr, mostInstr int64
		for i := range after {
			cpu := after[i].cpu - before[i].cpu
			u := after[i].user - before[i].user
			r, rb := after[i].reads-before[i].reads, after[i].repl-before[i].repl
			line := fmt.Sprintf("%.1f µs (user %.1f; %.3f round trips, %.3f context switches, %.0f B to its replica",
				perMsg(cpu, n), perMsg(u, n), float64(r)/float64(n), float64(after[i].csw-before[i].csw)/float64(n), float64(rb)/float64(n))
			if grind {
				line += fmt.Sprintf("; %.1f k instructions", float64(instr[i])/float64(n)/1e3)
				allInstr, mostInstr = allInstr+instr[i], max(mostInstr, instr[i])
			}
			per = append(per, line+")")
			most, total, user, reads, repl = max(most, cpu), total+cpu, user+u, reads+r, repl+rb
		}
		b.Logf("%d engine(s) on %d master(s), wait_replicas %d, %d recipients: %.0f delivered msg/s; redis CPU per message on each master: %s; all masters %.1f µs (user %.1f)",
			v.engines, len(after), v.wait, n, float64(n)/took.Seconds(), strings.Join(per, ", "), perMsg(total, n), perMsg(user, n))
		if os.Getenv("BENCH_CMDSTATS") != "" {
			b.Logf("commands per message, all masters (launch included): %s", callsPerMsg(before, after, n))
			for i := range after {
				b.Logf("… on %s: %s", after[i].addr, callsPerMsg(before[i:i+1], after[i:i+1], n))
				b.Logf("… µs a message in commands on %s: %s", after[i].addr, usecPerMsg(before[i], after[i], n))
			}
		}
		run = clusterRun{busiest: perMsg(most, n), all: perMsg(total, n)}
		b.ReportMetric(float64(n)/took.Seconds(), "delivered-msg/s")
		b.ReportMetric(perMsg(most, n), "redis-cpu-µs/msg/busiest-master")
		b.ReportMetric(perMsg(total, n), "redis-cpu-µs/msg/all-masters")
		b.ReportMetric(float64(reads)/float64(n), "redis-reads/msg/all-masters")
		b.ReportMetric(float64(repl)/float64(n), "repl-bytes/msg/all-masters")
		if grind {
			b.ReportMetric(float64(mostInstr)/float64(n), "redis-instr/msg/busiest-master")
			b.ReportMetric(float64(allInstr)/float64(n), "redis-instr/msg/all-masters")
		}
		if grind || os.Getenv("BENCH_IDLE") != "" {
			// What the idle engines' polling (and the servers' own
			// crons, the cluster bus) cost per second once the campaign
			// is done.
			time.Sleep(idleWindow)
			end := loads(b, c, single)
			var idle []string
			for i, m := range end {
				line := fmt.Sprintf("%.0f round trips/s, %.0f µs CPU/s", float64(m.reads-after[i].reads)/idleWindow.Seconds(),
					float64((m.cpu-after[i].cpu).Microseconds())/idleWindow.Seconds())
				if grind {
					line += fmt.Sprintf(", %.0f k instructions/s", float64(instructions(b, m.pid))/idleWindow.Seconds()/1e3)
					callgrind(b, "--dump="+b.Name()+"-idle", m.pid)
				}
				idle = append(idle, line)
			}
			b.Logf("idle after the campaign, on each master: %s", strings.Join(idle, "; "))
			if os.Getenv("BENCH_CMDSTATS") != "" {
				b.Logf("idle: commands per second, all masters: %s", callsPerMsg(after, end, int(idleWindow.Seconds())))
			}
		}
	}
	return run
}

// startReplica starts a replica of the redis-server at addr for the rest
// of b and waits until its first sync is done.
func startReplica(b *testing.B, addr string) {
	host, port, _ := strings.Cut(addr, ":")
	r := redistest.NewServer(b, redistest.Options{Args: []string{"--replicaof", host, port}})
	rc := r.Client(b)
	b.Cleanup(func() { _ = rc.ReplicaOf(context.Background(), "NO", "ONE").Err() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := rc.InfoMap(context.Background(), "replication").Result()
		if err == nil && info["Replication"]["master_link_status"] == "up" && info["Replication"]["master_sync_in_progress"] == "0" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("replica of %s not in sync after 30 s: %v %v", addr, info, err)
		}
	}
}

// benchNodeTimeout is the cluster-node-timeout of the bench's clusters:
// Redis's default, as production runs (the tests' 1 s makes every node
// ping every other one twice a second, and redis-server under callgrind
// could miss it).
const benchNodeTimeout = 15 * time.Second

// idleWindow is how long BENCH_CALLGRIND counts the idle engines.
const idleWindow = 5 * time.Second

// callgrind runs callgrind_control with one action on the redis-server
// pid (only the bench's own: others' runs may be going on).
func callgrind(b *testing.B, action, pid string) {
	b.Helper()
	if out, err := exec.Command("callgrind_control", action, pid).CombinedOutput(); err != nil {
		b.Fatalf("callgrind_control %s %s: %v %s", action, pid, err, out)
	}
}

// instructions is what the redis-server pid has retired since callgrind
// last zeroed or dumped it, summed over its threads (callgrind_control -e:
// "Th 1  24,727,855").
func instructions(b *testing.B, pid string) int64 {
	b.Helper()
	out, err := exec.Command("callgrind_control", "-e", pid).CombinedOutput()
	if err != nil {
		b.Fatalf("callgrind_control -e %s: %v %s", pid, err, out)
	}
	var sum int64
	seen := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "Th" {
			v, err := strconv.ParseInt(strings.ReplaceAll(f[2], ",", ""), 10, 64)
			if err != nil {
				b.Fatalf("callgrind_control -e %s: %q: %v", pid, line, err)
			}
			sum, seen = sum+v, true
		}
	}
	if !seen {
		b.Fatalf("callgrind_control -e %s: no counts in %s", pid, out)
	}
	return sum
}

// switches are the context switches of pid's main thread so far
// (/proc/PID/status), 0 where there is no /proc.
func switches(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
			c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += c
		}
	}
	return n
}

// callsPerMsg sums the commands of every master between before and after,
// per message, largest first ("evalsha 0.431, xreadgroup 0.210").
func callsPerMsg(before, after []masterLoad, n int) string {
	sum := map[string]int64{}
	for i := range after {
		for k, v := range after[i].calls {
			sum[k] += v - before[i].calls[k]
		}
	}
	keys := slices.Collect(maps.Keys(sum))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(sum[b], sum[a]) })
	var out []string
	for _, k := range keys {
		if sum[k] > 0 {
			out = append(out, fmt.Sprintf("%s %.4f", k, float64(sum[k])/float64(n)))
		}
	}
	return strings.Join(out, ", ")
}

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// loads reads every master's figures: the cluster's masters, or the one
// redis-server at single when c is nil.
func loads(b *testing.B, c *clustertest.Cluster, single string) []masterLoad {
	addrs := []string{single}
	if c != nil {
		addrs = addrs[:0]
		for _, m := range c.Masters(b) {
			addrs = append(addrs, m.Addr)
		}
	}
	var out []masterLoad
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		info, err := rdb.InfoMap(context.Background(), "server", "cpu", "stats", "replication", "commandstats").Result()
		_ = rdb.Close()
		if err != nil {
			b.Fatal(err)
		}
		secs := func(k string) time.Duration {
			f, _ := strconv.ParseFloat(info["CPU"][k], 64)
			return time.Duration(f * float64(time.Second))
		}
		reads, _ := strconv.ParseInt(info["Stats"]["total_reads_processed"], 10, 64)
		repl, _ := strconv.ParseInt(info["Replication"]["master_repl_offset"], 10, 64)
		m := masterLoad{addr: addr, cpu: secs("used_cpu_user") + secs("used_cpu_sys"), user: secs("used_cpu_user"),
			reads: reads, repl: repl, pid: info["Server"]["process_id"], calls: map[string]int64{}, usec: map[string]int64{}}
		for k, v := range info["Commandstats"] { // cmdstat_get: calls=3,usec=12,...
			calls, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(v, ",")[0], "calls="), 10, 64)
			m.calls[strings.TrimPrefix(k, "cmdstat_")] = calls
			if _, u, ok := strings.Cut(v, "usec="); ok {
				us, _ := strconv.ParseInt(strings.Split(u, ",")[0], 10, 64)
				m.usec[strings.TrimPrefix(k, "cmdstat_")] = us
			}
		}
		m.csw = switches(m.pid)
		out = append(out, m)
	}
	return out
}

// usecPerMsg is one master's time in commands per message (INFO
// commandstats usec; a script's includes the commands it calls), by
// command, the 12 largest.
func usecPerMsg(before, after masterLoad, n int) string {
	us := map[string]int64{}
	for k, v := range after.usec {
		us[k] = v - before.usec[k]
	}
	keys := slices.Collect(maps.Keys(us))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(us[b], us[a]) })
	var out []string
	for _, k := range keys[:min(len(keys), 12)] {
		out = append(out, fmt.Sprintf("%s %.2f", k, float64(us[k])/float64(n)))
	}
	return strings.Join(out, ", ")
}
