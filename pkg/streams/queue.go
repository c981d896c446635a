package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Group is the consumer group every engine joins.
const Group = "engines"

// Queue reads and settles jobs for one consumer.
type Queue struct {
	rdb      redis.UniversalClient
	ks       keyspace.Space
	consumer string
	repl     *replication // nil: writes wait for no replica (see WaitReplicas)
}

// New returns a queue in space for consumer (stable across restarts, so an
// engine takes its own pending jobs back when it starts).
func New(rdb redis.UniversalClient, ks keyspace.Space, consumer string) *Queue {
	return &Queue{rdb: rdb, ks: ks, consumer: consumer}
}

// Stream is the key of a lane's stream.
func (q *Queue) Stream(l Lane) string { return q.ks.Key("q", string(l)) }

// held is the stream holding d.
func (q *Queue) held(d Delivery) string {
	if d.Stream != "" {
		return d.Stream
	}
	return q.Stream(d.Lane)
}

// Delayed is the key of a lane's retry set (score: due time, unix ms).
func (q *Queue) Delayed(l Lane) string { return q.ks.Key("delayed", string(l)) }

// Init creates both streams and the consumer group if missing.
func (q *Queue) Init(ctx context.Context) error {
	for _, l := range Lanes {
		err := q.rdb.XGroupCreateMkStream(ctx, q.Stream(l), Group, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create group on %s: %w", q.Stream(l), err)
		}
	}
	return nil
}

// Read returns up to count new jobs of one lane (never delivered to any
// consumer before), waiting up to block when it is empty (block < 0: don't
// wait). Each lane has its own reader in the engine, so a backlog in one
// never delays the other.
func (q *Queue) Read(ctx context.Context, l Lane, count int, block time.Duration) ([]Delivery, error) {
	return q.read(ctx, q.Stream(l), ">", count, block)
}

// ReadPending returns up to count of this consumer's own unacknowledged
// jobs of lane l with ids after after ("0" for the first page). Page
// through with the last id returned until it returns none.
func (q *Queue) ReadPending(ctx context.Context, l Lane, after string, count int) ([]Delivery, error) {
	return q.read(ctx, q.Stream(l), after, count, -1)
}

// ReadPendingLine is ReadPending for line l.
func (q *Queue) ReadPendingLine(ctx context.Context, l Line, after string, count int) ([]Delivery, error) {
	ds, err := q.read(ctx, q.LineStream(l), after, count, -1)
	for i := range ds {
		ds[i].Key = l.Key
	}
	return ds, err
}

func (q *Queue) read(ctx context.Context, stream, id string, count int, block time.Duration) ([]Delivery, error) {
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    Group,
		Consumer: q.consumer,
		Streams:  []string{stream, id},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	var out []Delivery
	for _, s := range res {
		for _, m := range s.Messages {
			d, err := toDelivery(m)
			if err != nil {
				return out, err
			}
			d.Stream = s.Stream
			out = append(out, d)
		}
	}
	return out, nil
}

func toDelivery(m redis.XMessage) (Delivery, error) {
	raw, _ := m.Values["j"].(string)
	j, err := decodeJob(raw)
	if err != nil {
		return Delivery{}, fmt.Errorf("stream entry %s: %w", m.ID, err)
	}
	return Delivery{Job: j, StreamID: m.ID, Raw: raw}, nil
}

// moveDue re-queues due retries of one lane, atomically per batch.
var moveDue = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, j in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', j)
  redis.call('ZREM', KEYS[1], j)
end
return #due
`)

// MoveDue moves retries whose time has come back into their lane stream
// and returns how many moved.
func (q *Queue) MoveDue(ctx context.Context, now time.Time, limit int) (int, error) {
	total := 0
	for _, l := range Lanes {
		n, err := moveDue.Run(ctx, q.rdb, []string{q.Delayed(l), q.Stream(l)}, now.UnixMilli(), limit).Int()
		if err != nil {
			return total, fmt.Errorf("move due retries of %s: %w", l, err)
		}
		total += n
	}
	return total, nil
}

// Depth reports jobs waiting in a lane: stream entries not yet read plus
// pending ones, and delayed retries.
func (q *Queue) Depth(ctx context.Context, l Lane) (stream, delayed int64, err error) {
	pipe := q.rdb.Pipeline()
	xl := pipe.XLen(ctx, q.Stream(l))
	zc := pipe.ZCard(ctx, q.Delayed(l))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("queue depth: %w", err)
	}
	return xl.Val(), zc.Val(), nil
}
