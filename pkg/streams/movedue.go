package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// moveDue re-queues due retries of one retry set into its lane stream,
// atomically per batch, and returns how many moved and when the next one
// left is due (-1: none).
var moveDue = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, j in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', j)
end
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
local nx = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nx[2] or '-1'}
`)

// lookEvery is how often MoveDue looks at every retry set for jobs other
// processes put there (the retries of an engine gone since; a live one
// moves its own); between looks it knows the due times of what this queue
// wrote, and a ring of a lane's bell about its retry sets (a scheduled
// launch, a cancel bringing jobs forward) makes it look again at once.
const lookEvery = 10 * time.Second

// MoveDue moves retries whose time has come back into their lane streams
// and returns how many moved. It runs the mover only on the retry sets
// known to hold a due job, so an idle engine costs one pipelined look at
// the sets every lookEvery.
func (q *Queue) MoveDue(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := q.look(ctx, now); err != nil {
		return 0, err
	}
	total := 0
	for n := 0; n < keyspace.Shards; n++ {
		for _, l := range Lanes {
			key := q.Delayed(n, l)
			if !q.due.isDue(key, now) {
				continue
			}
			res, err := moveDue.Run(ctx, q.rdb, []string{key, q.Stream(n, l)}, now.UnixMilli(), limit).Slice()
			if err != nil || len(res) != 2 {
				return total, fmt.Errorf("move due retries of %s: %w", key, err)
			}
			moved, _ := res[0].(int64)
			next, _ := res[1].(string)
			q.due.set(key, next)
			total += int(moved)
			if moved > 0 {
				q.ring(ctx, l)
			}
		}
	}
	return total, nil
}

// LookAgain makes the next MoveDue look at every retry set (a bell rang:
// another process may have put jobs there).
func (q *Queue) LookAgain() {
	q.due.mu.Lock()
	q.due.stale = true
	q.due.mu.Unlock()
}

// look reads the earliest due time of every retry set, in one round trip,
// when lookEvery has passed or a ring asked for it.
func (q *Queue) look(ctx context.Context, now time.Time) error {
	q.due.mu.Lock()
	fresh := !q.due.stale && now.Sub(q.due.looked) < lookEvery
	q.due.mu.Unlock()
	if fresh {
		return nil
	}
	pipe := q.rdb.Pipeline()
	var keys []string
	var cmds []*redis.ZSliceCmd
	for n := 0; n < keyspace.Shards; n++ {
		for _, l := range Lanes {
			keys = append(keys, q.Delayed(n, l))
			cmds = append(cmds, pipe.ZRangeWithScores(ctx, q.Delayed(n, l), 0, 0))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("look at retry sets: %w", err)
	}
	q.due.mu.Lock()
	defer q.due.mu.Unlock()
	q.due.at = map[string]time.Time{}
	for i, c := range cmds {
		if zs := c.Val(); len(zs) > 0 {
			q.due.at[keys[i]] = time.UnixMilli(int64(zs[0].Score))
		}
	}
	q.due.looked, q.due.stale = now, false
	return nil
}

func (t *dueTimes) isDue(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[key]
	return ok && !at.After(now)
}

// set records what the mover found left in a set ("-1": nothing).
func (t *dueTimes) set(key, next string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms, err := strconv.ParseFloat(next, 64)
	if err != nil || ms < 0 {
		delete(t.at, key)
		return
	}
	t.at[key] = time.UnixMilli(int64(ms))
}

// bell is the key of a lane's doorbell: a stream of at most one entry,
// added to after jobs were put in the lane's streams by any process, that
// routers wait on (one blocking read per lane instead of one per shard).
func (q *Queue) bell(l Lane) string { return q.ks.Key("bell", string(l)) }

// ring tells every router of lane l there is something to read in its
// streams. A lost ring costs latency only: routers also read every few
// seconds unasked.
func (q *Queue) ring(ctx context.Context, l Lane) { q.ringAs(ctx, l, "s") }

// ringDelayed tells the engines of lane l that jobs were put in its retry
// sets or brought forward there (their movers look again).
func (q *Queue) ringDelayed(ctx context.Context, l Lane) { q.ringAs(ctx, l, "d") }

func (q *Queue) ringAs(ctx context.Context, l Lane, what string) {
	_ = q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.bell(l), MaxLen: 1, Values: []any{"r", what}}).Err()
}

// Ring is what Bell heard.
type Ring struct {
	ID      string // the latest ring's id, to wait after next time
	Rang    bool   // a ring came
	Delayed bool   // it was about the retry sets (see LookAgain)
}

// LastRing is the id of lane l's latest ring, to wait after.
func (q *Queue) LastRing(ctx context.Context, l Lane) (string, error) {
	ms, err := q.rdb.XRevRangeN(ctx, q.bell(l), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("lane %s's bell: %w", l, err)
	}
	if len(ms) == 0 {
		return "0-0", nil
	}
	return ms[0].ID, nil
}

// Bell waits up to block (> 0) for a ring of lane l after the one whose
// id is last (see LastRing).
func (q *Queue) Bell(ctx context.Context, l Lane, last string, block time.Duration) (Ring, error) {
	res, err := q.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{q.bell(l), last}, Count: 1, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return Ring{ID: last}, nil
	}
	if err != nil {
		return Ring{ID: last}, fmt.Errorf("wait for lane %s: %w", l, err)
	}
	r := Ring{ID: last}
	for _, s := range res {
		for _, m := range s.Messages {
			r.ID, r.Rang = m.ID, true
			r.Delayed = r.Delayed || m.Values["r"] == "d"
		}
	}
	return r, nil
}
