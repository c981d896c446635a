package streams

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Wake makes every line of throttle key due now, in every shard (an
// operator changed its limits): no waiting line keeps a time computed
// from the old ones.
func (q *Queue) Wake(ctx context.Context, key string) (int, error) {
	n, err := q.wakeMatching(ctx, "*|"+escapeGlob(key), true)
	if err != nil {
		return n, fmt.Errorf("wake %s: %w", key, err)
	}
	return n, nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// WakeCampaign makes every line of campaign id due now (it was resumed or
// cancelled: its waiting lines are to be read, or emptied, at once).
func (q *Queue) WakeCampaign(ctx context.Context, id string) (int, error) {
	n := 0
	for _, lane := range Lanes {
		m, err := q.wakeMatching(ctx, escapeGlob(string(lane)+"|"+id+"|")+"*", false)
		n += m
		if err != nil {
			return n, fmt.Errorf("wake campaign %s: %w", id, err)
		}
	}
	return n, nil
}

// wakeMatching scores the lines matching the glob due now, a shard's in
// one pipeline; onlyReady leaves lines that are not in the ready set out.
func (q *Queue) wakeMatching(ctx context.Context, match string, onlyReady bool) (int, error) {
	now := float64(time.Now().UnixMilli())
	n := 0
	byShard := map[int][]Line{}
	if err := q.scanLines(ctx, match, func(l Line) error { byShard[l.Shard] = append(byShard[l.Shard], l); return nil }); err != nil {
		return 0, err
	}
	for shard, ls := range byShard {
		pipe := q.rdb.Pipeline()
		for _, l := range ls {
			z := redis.Z{Score: now, Member: l.Name()}
			if onlyReady {
				pipe.ZAddXX(ctx, q.ready(shard), z)
			} else {
				pipe.ZAdd(ctx, q.ready(shard), z)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return n, err
		}
		n += len(ls)
	}
	return n, nil
}

var wakeAllScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  redis.call('ZADD', KEYS[1], 'XX', now, m)
  n = n + 1
end
return n
`)

// WakeAll makes every waiting line of every shard due now. An engine
// starting does it: a line an engine gone since had set aside (for the
// attempts it had running on it) must not wait out the time it was given.
func (q *Queue) WakeAll(ctx context.Context) (int, error) {
	total := 0
	for shard := 0; shard < keyspace.Shards; shard++ {
		n, err := wakeAllScript.Run(ctx, q.rdb, []string{q.ready(shard)}).Int()
		if err != nil {
			return total, fmt.Errorf("wake every line: %w", err)
		}
		total += n
	}
	return total, nil
}
