package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Incr adds By to Field of the hash Key; an empty Key is the tally's
// counters hash (the record's shard's). Another key (one outside the
// record's shard: a shared counter) is moved right after the record's
// step, not in it.
type Incr struct {
	Key   string
	Field string
	By    int64
}

// amendScript replaces a record only if it still holds what the caller
// read (ARGV[2]), then applies the increments, in one step: a record and
// its shard's counters never disagree.
// ARGV: field, old, new, n increments, (key index, field, by) × n, event.
var amendScript = redis.NewScript(luaEvent + `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur ~= ARGV[2] then return {0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
event(KEYS[3], ARGV[i])
return {1}
`)

// Amendment is what an Amend's change function decides for one record.
type Amendment struct {
	Record Record        // the record to store
	Incrs  []Incr        // counters to move in the same step
	Event  *events.Event // appended in the same step, if set
}

// Amend changes a record after its job was settled (a bounce or a
// complaint that arrived later by mail): it reads the record under field
// in t, asks change what to store (nil: leave it as it is), and stores it
// with the counter increments atomically, provided the record did not
// change meanwhile (else it reads it again). It returns whether a change
// was stored and then the values of the counters named in read, summed
// over t's shards.
func (q *Queue) Amend(ctx context.Context, whole Tally, field string, read []string, change func(Record) *Amendment) (bool, []int64, error) {
	shard := keyspace.ShardOf(field)
	t := whole.For(field)
	for try := 0; try < 10; try++ {
		old, err := q.rdb.HGet(ctx, t.Records, field).Result()
		if errors.Is(err, redis.Nil) {
			return false, nil, fmt.Errorf("amend %s: %w", field, ErrNoRecord)
		}
		if err != nil {
			return false, nil, fmt.Errorf("amend %s: %w", field, err)
		}
		rec, err := DecodeRecord(old)
		if err != nil {
			return false, nil, fmt.Errorf("amend %s: %w", field, err)
		}
		a := change(rec)
		if a == nil {
			return false, nil, nil
		}
		keys := []string{t.Records, t.Counters, q.EventsKey(shard)}
		var own, shared []Incr
		for _, in := range a.Incrs {
			if in.Key == "" || in.Key == t.Counters {
				own = append(own, in)
			} else {
				shared = append(shared, in)
			}
		}
		args := []any{field, old, a.Record.Encode(), len(own)}
		for _, in := range own {
			args = append(args, 2, in.Field, in.By)
		}
		args = append(args, amendEvent(a))
		res, err := amendScript.Run(ctx, q.rdb, keys, args...).Int64Slice()
		if err != nil {
			return false, nil, fmt.Errorf("amend %s: %w", field, err)
		}
		if res[0] == 1 {
			counts, err := q.incrAndRead(ctx, whole, shared, read)
			return true, counts, err
		}
	}
	return false, nil, fmt.Errorf("amend %s: the record kept changing", field)
}

// incrAndRead applies increments of shared counters and reads the fields
// read of every shard's counters, summed, in one round trip.
func (q *Queue) incrAndRead(ctx context.Context, t Tally, shared []Incr, read []string) ([]int64, error) {
	pipe := q.rdb.Pipeline()
	for _, in := range shared {
		pipe.HIncrBy(ctx, in.Key, in.Field, in.By)
	}
	var cmds []*redis.SliceCmd
	if len(read) > 0 {
		for _, st := range t.all() {
			cmds = append(cmds, pipe.HMGet(ctx, st.Counters, read...))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("amend counters: %w", err)
	}
	return sumFields(cmds, len(read)), nil
}

// sumFields adds up the replies of HMGETs of the same n fields.
func sumFields(cmds []*redis.SliceCmd, n int) []int64 {
	out := make([]int64, n)
	for _, c := range cmds {
		for i, v := range c.Val() {
			s, _ := v.(string)
			x, _ := strconv.ParseInt(s, 10, 64)
			out[i] += x
		}
	}
	return out
}
