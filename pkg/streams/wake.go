package streams

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wake makes every line of throttle key due now (an operator changed its
// limits): no waiting line keeps a time computed from the old ones.
func (q *Queue) Wake(ctx context.Context, key string) (int, error) {
	n := 0
	iter := q.rdb.SScan(ctx, q.lines(), 0, "*|"+escapeGlob(key), 1000).Iterator()
	now := float64(time.Now().UnixMilli())
	for iter.Next(ctx) {
		if err := q.rdb.ZAddXX(ctx, q.ready(), redis.Z{Score: now, Member: iter.Val()}).Err(); err != nil {
			return n, fmt.Errorf("wake %s: %w", key, err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
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
	now := float64(time.Now().UnixMilli())
	for _, lane := range Lanes {
		iter := q.rdb.SScan(ctx, q.lines(), 0, escapeGlob(string(lane)+"|"+id+"|")+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := q.rdb.ZAdd(ctx, q.ready(), redis.Z{Score: now, Member: iter.Val()}).Err(); err != nil {
				return n, fmt.Errorf("wake campaign %s: %w", id, err)
			}
			n++
		}
		if err := iter.Err(); err != nil {
			return n, fmt.Errorf("wake campaign %s: %w", id, err)
		}
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

// WakeAll makes every waiting line due now. An engine starting does it:
// a line an engine gone since had set aside (for the attempts it had
// running on it) must not wait out the time it was given.
func (q *Queue) WakeAll(ctx context.Context) (int, error) {
	n, err := wakeAllScript.Run(ctx, q.rdb, []string{q.ready()}).Int()
	if err != nil {
		return 0, fmt.Errorf("wake every line: %w", err)
	}
	return n, nil
}
