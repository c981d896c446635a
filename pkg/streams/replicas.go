package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is a write's error when its master acknowledged it but
// fewer replicas than asked (WaitReplicas) had it within the timeout,
// though the master has that many replicas (see recount). A failover now could
// lose it, so it does not count as done; the write is safe to repeat (it
// changes nothing twice), and a caller retries it.
var ErrNotReplicated = errors.New("not on enough replicas in time")

// replicaCheck is how long a master's count of replicas is trusted
// before it is read again (see recount).
const replicaCheck = time.Second

// replication is what a queue waits for after a write that acknowledges,
// moves or hands out jobs (settle, route, take, enqueue): n replicas of
// the master within timeout (WAIT n timeout, sent after the write on its
// connection).
type replication struct {
	n       int
	timeout time.Duration

	mu     sync.Mutex
	online map[string]replicaCount // master address → its replicas (recount)
}

type replicaCount struct {
	n  int
	at time.Time
}

// WaitReplicas makes the queue's settles, routes, takes and enqueues wait
// until n replicas of the master they wrote to have them, for up to
// timeout each, before they count as done (redis.wait_replicas): a job is
// attempted only once its take is replicated, so a failover can neither
// hand it out again nor lose its outcome. A master with fewer
// replicas than n (its replica failed, or it was just promoted) is
// waited on for those it has; with none, not at all. n = 0 (the
// default) waits for nothing: Redis replication is asynchronous, and a
// failover can lose the writes of the last moments before it. A timeout
// of zero is one second (WAIT's 0 would wait for ever).
func (q *Queue) WaitReplicas(n int, timeout time.Duration) {
	if n <= 0 {
		q.repl = nil
		return
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	q.repl = &replication{n: n, timeout: timeout, online: map[string]replicaCount{}}
}

// runReplicated runs script like script.Run, and then, when WaitReplicas
// asks for it, waits until the replicas of the master of keys[0] have the
// write (see runAllReplicated).
func (q *Queue) runReplicated(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if q.repl == nil {
		return script.Run(ctx, q.rdb, keys, args...)
	}
	return q.runAllReplicated(ctx, script, []scriptCall{{keys: keys, args: args}})[0]
}

// masterOf is the client of the master holding key, or nil when the
// queue's client is neither a single server nor a cluster.
func (q *Queue) masterOf(ctx context.Context, key string) *redis.Client {
	switch c := q.rdb.(type) {
	case *redis.Client:
		return c
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil // the cluster client's own error will tell
		}
		return node
	}
	return nil
}

// want is how many replicas to wait for on node: n, or as many as it has
// when fewer (see recount).
func (r *replication) want(ctx context.Context, node *redis.Client, cluster bool) int {
	addr := node.Options().Addr
	r.mu.Lock()
	c, ok := r.online[addr]
	r.mu.Unlock()
	if !ok || time.Since(c.at) > replicaCheck {
		return min(r.n, r.recount(ctx, node, cluster))
	}
	return min(r.n, c.n)
}

// recount reads how many replicas node has now: those online, and on a
// cluster also those the master does not deem failed (flags fail? or
// fail: silent for the cluster's node timeout), connected or not: a replica cut off a
// moment ago holds writes up (ErrNotReplicated) rather than let them go
// unreplicated, and one gone for good stops doing so after the node
// timeout. On one server, the replicas online (INFO replication) count.
// When it cannot tell, it says n: a write is then held to what was asked.
func (r *replication) recount(ctx context.Context, node *redis.Client, cluster bool) int {
	n, err := replicasOf(ctx, node, cluster)
	if err != nil {
		return r.n
	}
	r.mu.Lock()
	r.online[node.Options().Addr] = replicaCount{n: n, at: time.Now()}
	r.mu.Unlock()
	return n
}

func replicasOf(ctx context.Context, node *redis.Client, cluster bool) (int, error) {
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	online := 0
	for line := range strings.SplitSeq(info, "\n") {
		// slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0
		if strings.HasPrefix(line, "slave") && strings.Contains(line, ",state=online,") {
			online++
		}
	}
	if !cluster {
		return online, nil
	}
	id, err := node.ClusterMyID(ctx).Result()
	if err != nil {
		return 0, err
	}
	lines, err := node.ClusterSlaves(ctx, id).Result()
	if err != nil {
		return 0, err
	}
	known := 0
	for _, l := range lines {
		// <id> <ip:port@cport> <flags> <master> ...
		if f := strings.Fields(l); len(f) > 2 && !strings.Contains(f[2], "fail") {
			known++
		}
	}
	// A replica just joined may be online before the master's node table
	// says whose it is.
	return max(online, known), nil
}

// runAllReplicated is runAll (one pipelined round trip, each run atomic in
// its own slot) with WaitReplicas: the calls are grouped by the master of
// their first key, and each master gets its runs and then one WAIT in one
// pipeline of its own (WAIT waits for its connection's last write), the
// masters at once. A master's runs that its replicas did not confirm in
// time fail with ErrNotReplicated, as in runReplicated.
func (q *Queue) runAllReplicated(ctx context.Context, script *redis.Script, calls []scriptCall) []*redis.Cmd {
	if q.repl == nil || len(calls) == 0 {
		return runAll(ctx, q.rdb, script, calls)
	}
	firsts := make([]string, len(calls))
	for i, c := range calls {
		firsts[i] = c.keys[0]
	}
	return q.byMaster(ctx, firsts,
		func(at []int) []*redis.Cmd {
			sub := make([]scriptCall, len(at))
			for j, i := range at {
				sub[j] = calls[i]
			}
			return runAll(ctx, q.rdb, script, sub)
		},
		func(node *redis.Client, at []int, want int) ([]*redis.Cmd, int, error) {
			return q.evalAllAndWait(ctx, node, script, calls, at, want)
		})
}

// byMaster runs n writes, the i-th in the slot of key firsts[i], with
// WaitReplicas: grouped by master, each master's by waited (its writes,
// then a WAIT for want replicas on the same connection, returning how
// many acknowledged), the masters at once; those of masters with no
// replica to wait for by plain. It returns the writes' replies in order;
// a master's writes its replicas did not confirm in time fail with
// ErrNotReplicated.
func (q *Queue) byMaster(ctx context.Context, firsts []string, plain func(at []int) []*redis.Cmd, waited func(node *redis.Client, at []int, want int) ([]*redis.Cmd, int, error)) []*redis.Cmd {
	_, cluster := q.rdb.(*redis.ClusterClient)
	type group struct {
		node *redis.Client
		want int
		at   []int
	}
	groups := map[string]*group{}
	var direct []int // writes of masters with no replica to wait for
	for i, key := range firsts {
		node := q.masterOf(ctx, key)
		if node == nil {
			direct = append(direct, i)
			continue
		}
		addr := node.Options().Addr
		g := groups[addr]
		if g == nil {
			g = &group{node: node, want: q.repl.want(ctx, node, cluster)}
			groups[addr] = g
		}
		if g.want == 0 {
			direct = append(direct, i)
			continue
		}
		g.at = append(g.at, i)
	}
	out := make([]*redis.Cmd, len(firsts))
	if len(direct) > 0 {
		for j, c := range plain(direct) {
			out[direct[j]] = c
		}
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		if len(g.at) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmds, acked, err := waited(g.node, g.at, g.want)
			if err == nil && acked < g.want && q.repl.recount(ctx, g.node, cluster) >= g.want {
				err = fmt.Errorf("%w: %d of %d replicas of %s after %v", ErrNotReplicated, acked, g.want, g.node.Options().Addr, q.repl.timeout)
			}
			if err != nil {
				if c, ok := q.rdb.(*redis.ClusterClient); ok && !errors.Is(err, ErrNotReplicated) {
					c.ReloadState(ctx)
				}
			}
			for j, i := range g.at {
				if err != nil && cmds[j].Err() == nil {
					cmds[j].SetErr(err)
				}
				out[i] = cmds[j]
			}
		}()
	}
	wg.Wait()
	return out
}

// evalAllAndWait sends the calls at of calls, then WAIT, in one pipeline
// to node, loading the script first when node lacks it. err is the
// pipeline's failure (the connection's), each run's own error is its own.
func (q *Queue) evalAllAndWait(ctx context.Context, node *redis.Client, script *redis.Script, calls []scriptCall, at []int, want int) ([]*redis.Cmd, int, error) {
	for try := 0; ; try++ {
		cmds := make([]*redis.Cmd, len(at))
		var wait *redis.Cmd
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range at {
				cmds[j] = script.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			wait = p.Do(ctx, "wait", want, q.repl.timeout.Milliseconds())
			return nil
		})
		if try == 0 && redis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
			if err := script.Load(ctx, node).Err(); err != nil {
				return cmds, 0, err
			}
			continue
		}
		acked, err := wait.Int()
		return cmds, acked, err
	}
}
