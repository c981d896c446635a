package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// afterTakeScript is a take's second half (see takeDirect): line KEYS[3]
// (named ARGV[2] in its shard's ready set KEYS[1] and lines set KEYS[2])
// with jobs no engine has read yet goes to the back of the ready set (so
// lines sharing a key take turns); one with none leaves it, and one with
// nothing unread or held is deleted. It decides on the line as it is when it runs, whatever
// was added or taken since the read: a job routed in meanwhile keeps its
// line ready. It returns how many jobs are left waiting.
var afterTakeScript = redis.NewScript(luaIntoLine + luaLetGo + `
local held, left = streamDepth(KEYS[3], ARGV[1])
if held == 0 and left == 0 then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[3])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
if left > 0 then
  redis.call('ZADD', KEYS[1], 'XX', nowMs(), ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
return left
`)

// takeDirect is TakeMany without a replica to wait for: each line's jobs
// are read by a plain XREADGROUP and its place in the ready set set
// right after it by afterTakeScript, all in one pipelined round trip
// (with later's scores after them). A
// script reading them would copy every job into Lua and back (the
// larger part of a take's cost in redis-server); the two halves need no
// atomicity, as the second decides on the line's state when it runs.
func (q *Queue) takeDirect(ctx context.Context, asks []TakeAsk, later map[Line]time.Time) ([]Taken, error) {
	reads := make([]*redis.XStreamSliceCmd, len(asks))
	afters := make([]*redis.Cmd, len(asks))
	keys := make([][]string, len(asks))
	var scored []*redis.IntCmd
	run := func(eval bool, at []int) {
		pipe := q.rdb.Pipeline()
		for _, i := range at {
			l := asks[i].Line
			if reads[i] == nil {
				reads[i] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
					Group: Group, Consumer: q.consumer, Streams: []string{q.LineStream(l), ">"}, Count: int64(asks[i].N), Block: -1,
				})
			}
			keys[i] = []string{q.ready(l.Shard), q.lines(l.Shard), q.LineStream(l)}
			if eval {
				afters[i] = afterTakeScript.Eval(ctx, pipe, keys[i], Group, l.Name())
			} else {
				afters[i] = afterTakeScript.EvalSha(ctx, pipe, keys[i], Group, l.Name())
			}
		}
		if !eval { // the first round trip scores later's lines too
			scored = q.deferIn(ctx, pipe, later)
		}
		_, _ = pipe.Exec(ctx)
	}
	all := make([]int, len(asks))
	for i := range all {
		all[i] = i
	}
	run(false, all)
	var again []int
	for i, c := range afters {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		run(true, again)
	}
	out := make([]Taken, len(asks))
	for i, a := range asks {
		out[i] = q.takenDirect(a.Line, reads[i], afters[i])
	}
	return out, deferred(scored)
}

// takenDirect is what takeDirect took from line l: the jobs read, and
// the jobs left after them (0 when the second half failed: the line keeps
// its place in the ready set, and a later take sets it right).
func (q *Queue) takenDirect(l Line, read *redis.XStreamSliceCmd, after *redis.Cmd) Taken {
	res, err := read.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Taken{Err: fmt.Errorf("take from line %s: %w", l.Name(), err)}
	}
	ds, err := deliveries(res)
	t := Taken{Jobs: ds, Entries: countEntries(ds)}
	if err != nil {
		t.Err = fmt.Errorf("line %s: %w", l.Name(), err)
		return t
	}
	for i := range t.Jobs {
		t.Jobs[i].Key = l.Key
	}
	if left, err := after.Int(); err == nil {
		t.Left = left
	}
	return t
}
