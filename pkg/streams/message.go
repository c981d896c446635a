package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// MessageKey is where a job's ready-made message is kept (transactional
// mail submitted over SMTP or the API carries its own message; campaign
// jobs are rendered from their campaign instead).
// It is in the job's shard (Job.Shard: its id's).
func (q *Queue) MessageKey(jobID string) string {
	return q.ks.In(keyspace.ShardOf(jobID), "msg", jobID)
}

// addMessagesScript stores every message and queues every job, or none:
// it checks all job ids are unused before it writes anything.
// KEYS: stream, counters, records, then one message key per job, then
// one key per index entry.
// ARGV: records expiry (unix ms, 0 for none), the number of index
// entries, then per job: record field, queued record, encoded job,
// message; then per index entry: field, value, expiry (unix ms).
var addMessagesScript = redis.NewScript(`
local m = tonumber(ARGV[2])
local n = (#ARGV - 2 - 3*m) / 4
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[3], ARGV[3 + 4*i]) == 1 then return -1 - i end
end
-- The index first: a script's writes before an error stay, so one that
-- fails there has queued nothing.
for k = 0, m - 1 do
  local a = 3 + 4*n + 3*k
  redis.call('HSET', KEYS[4 + n + k], ARGV[a], ARGV[a + 1])
  redis.call('PEXPIREAT', KEYS[4 + n + k], ARGV[a + 2])
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[3], ARGV[3 + 4*i], ARGV[4 + 4*i])
  redis.call('SET', KEYS[4 + i], ARGV[6 + 4*i])
  redis.call('XADD', KEYS[1], '*', 'j', ARGV[5 + 4*i])
end
if ARGV[1] ~= '0' then redis.call('PEXPIREAT', KEYS[3], ARGV[1]) end
redis.call('HINCRBY', KEYS[2], 'total', n)
redis.call('HINCRBY', KEYS[2], 'queued', n)
return n
`)

// IndexEntry is a hash field written in the same atomic step as the
// jobs (HSET Key Field Value, Key expiring at ExpireAt): the Message-ID
// index's (pkg/verp names and owns the key; it must be in the jobs'
// shard).
type IndexEntry struct {
	Key, Field, Value string
	ExpireAt          time.Time
}

// Item is one job with its ready-made message.
type Item struct {
	Job *Job
	Msg []byte
}

// AddMessages stores each item's message and queues its job — all of
// them in one atomic step, or none: a client told "accepted" has every
// recipient queued, and one told to retry has none, so a retry never
// duplicates. Every job must be on one lane and in one shard (ids chosen so) with a unique ID; HasMessage is set on each.
// The index entries, in the jobs' shard too, are written in the same step.
func (q *Queue) AddMessages(ctx context.Context, t Tally, items []Item, index ...IndexEntry) error {
	if len(items) == 0 {
		return nil
	}
	lane := items[0].Job.Lane
	shard := items[0].Job.Shard()
	t = t.In(shard)
	keys := []string{q.Stream(shard, lane), t.Counters, t.Records}
	expire := int64(0)
	if !t.RecordsExpireAt.IsZero() {
		expire = t.RecordsExpireAt.UnixMilli()
	}
	args := make([]any, 0, 2+4*len(items)+3*len(index))
	args = append(args, expire, len(index))
	for _, it := range items {
		j := it.Job
		if j.Lane != lane {
			return fmt.Errorf("enqueue messages: jobs on two lanes (%s, %s)", lane, j.Lane)
		}
		if j.Shard() != shard {
			return fmt.Errorf("enqueue messages: jobs %s and %s in two shards", items[0].Job.ID, j.ID)
		}
		j.HasMessage = true
		raw, err := j.encode()
		if err != nil {
			return err
		}
		keys = append(keys, q.MessageKey(j.ID))
		args = append(args, j.RecordField(), Record{Status: string(outcome.Queued), JobID: j.ID}.Encode(), raw, it.Msg)
	}
	for _, e := range index {
		keys = append(keys, e.Key)
		args = append(args, e.Field, e.Value, e.ExpireAt.UnixMilli())
	}
	n, err := addMessagesScript.Run(ctx, q.rdb, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("enqueue %d messages: %w", len(items), err)
	}
	if n < 0 {
		return fmt.Errorf("enqueue messages: job id %s already used", items[-n-1].Job.ID)
	}
	q.ring(ctx, lane)
	return nil
}

// AddMessage stores msg and queues j to send it, in one atomic step: when
// it returns nil the job is durable (a submission server may then answer
// 250).
func (q *Queue) AddMessage(ctx context.Context, j *Job, t Tally, msg []byte) error {
	return q.AddMessages(ctx, t, []Item{{Job: j, Msg: msg}})
}

// ErrNoMessage means a job's stored message is gone.
var ErrNoMessage = errors.New("stored message not found")

// Message returns a job's stored message.
func (q *Queue) Message(ctx context.Context, jobID string) ([]byte, error) {
	b, err := q.rdb.Get(ctx, q.MessageKey(jobID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job %s: %w", jobID, ErrNoMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: load message: %w", jobID, err)
	}
	return b, nil
}
