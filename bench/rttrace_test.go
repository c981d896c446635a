package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// tripTrace counts an engine's round trips to each Redis node by what
// they carry ("P evalsha(line)×2 xreadgroup×1": a pipeline of two script
// calls whose first key is a line stream, and a stream read), for
// BENCH_RTTRACE: which of the engine's steps each master wakes up for.
type tripTrace struct {
	mu     sync.Mutex
	trips  map[string]map[string]int // node → what → how many
	hooked sync.Map                  // *redis.Client → true
}

// attach counts the round trips of rdb (every node of a cluster client:
// those it has and those it will make).
func (t *tripTrace) attach(rdb redis.UniversalClient) {
	hook := func(n *redis.Client) {
		if _, done := t.hooked.LoadOrStore(n, true); !done {
			n.AddHook(tripHook{t, n.Options().Addr})
		}
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		c.OnNewNode(hook)
		_ = c.ForEachShard(context.Background(), func(_ context.Context, n *redis.Client) error { hook(n); return nil })
	case *redis.Client:
		hook(c)
	}
}

func (t *tripTrace) note(node string, cmds []redis.Cmder, pipe bool) {
	what := map[string]int{}
	for _, c := range cmds {
		what[cmdKind(c)]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(what)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, what[k]))
	}
	key := strings.Join(parts, " ")
	if pipe {
		key = "P " + key
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.trips == nil {
		t.trips = map[string]map[string]int{}
	}
	if t.trips[node] == nil {
		t.trips[node] = map[string]int{}
	}
	t.trips[node][key]++
}

// cmdKind names a command by its name and the kind of its first key
// (the part after the hash tag: "line", "ready", "supp").
func cmdKind(c redis.Cmder) string {
	args, key := c.Args(), 1
	if c.Name() == "evalsha" || c.Name() == "eval" {
		key = 3
	}
	if len(args) <= key {
		return c.Name()
	}
	k, ok := args[key].(string)
	if _, rest, found := strings.Cut(k, "}:"); ok && found {
		kind, _, _ := strings.Cut(rest, ":")
		return c.Name() + "(" + kind + ")"
	}
	return c.Name()
}

// String lists each node's round trips, most frequent first (at most 20).
func (t *tripTrace) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, node := range slices.Sorted(maps.Keys(t.trips)) {
		m, total := t.trips[node], 0
		for _, v := range m {
			total += v
		}
		fmt.Fprintf(&b, "%s: %d round trips\n", node, total)
		keys := slices.Collect(maps.Keys(m))
		slices.SortFunc(keys, func(a, b string) int { return m[b] - m[a] })
		for _, k := range keys[:min(len(keys), 20)] {
			fmt.Fprintf(&b, "  %6d %s\n", m[k], k)
		}
	}
	return b.String()
}

type tripHook struct {
	t    *tripTrace
	node string
}

func (h tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		h.t.note(h.node, []redis.Cmder{c}, false)
		return next(ctx, c)
	}
}
func (h tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		h.t.note(h.node, cs, true)
		return next(ctx, cs)
	}
}
