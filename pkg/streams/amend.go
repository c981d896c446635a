package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
)

// Incr adds By to Field of the hash Key; an empty Key is the tally's
// counters hash.
type Incr struct {
	Key   string
	Field string
	By    int64
}

// amendScript replaces a record only if it still holds what the caller
// read (ARGV[2]), then applies the increments and reads counters back, in
// one step: a record and its counters never disagree.
// ARGV: field, old, new, n increments, (key index, field, by) × n, fields
// of KEYS[2] to read back.
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
i = i + 1
local out = {1}
for j = i, #ARGV do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[2], ARGV[j]) or '0') or 0
end
return out
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
// was stored and then the values of t.Counters' fields named in read.
func (q *Queue) Amend(ctx context.Context, t Tally, field string, read []string, change func(Record) *Amendment) (bool, []int64, error) {
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
		keys := []string{t.Records, t.Counters, q.EventsKey()}
		args := []any{field, old, a.Record.Encode(), len(a.Incrs)}
		for _, in := range a.Incrs {
			idx := 2
			if in.Key != "" && in.Key != t.Counters {
				keys = append(keys, in.Key)
				idx = len(keys)
			}
			args = append(args, idx, in.Field, in.By)
		}
		args = append(args, amendEvent(a))
		for _, f := range read {
			args = append(args, f)
		}
		res, err := amendScript.Run(ctx, q.rdb, keys, args...).Int64Slice()
		if err != nil {
			return false, nil, fmt.Errorf("amend %s: %w", field, err)
		}
		if res[0] == 1 {
			return true, res[1:], nil
		}
	}
	return false, nil, fmt.Errorf("amend %s: the record kept changing", field)
}
