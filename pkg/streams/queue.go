package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	due      dueTimes        // when each retry set next has a job due, as far as this queue knows
	repl     *replication    // nil: writes wait for no replica (see WaitReplicas)
	settles  settleBatcher   // runs waiting to be settled together (SettleRun)
	perEntry [2]atomic.Int64 // per lane (laneIndex): jobs per entry of the last read (Read)
	linePack atomic.Int64    // jobs a marketing line's entry holds at most (LinePack, or 1: PackLines)
}

// New returns a queue in space for consumer (stable across restarts, so an
// engine takes its own pending jobs back when it starts).
func New(rdb redis.UniversalClient, ks keyspace.Space, consumer string) *Queue {
	q := &Queue{rdb: rdb, ks: ks, consumer: consumer}
	q.linePack.Store(LinePack)
	return q
}

// PackLines sets whether routes put a campaign's jobs bound for one line
// in as packs (LinePack; the default) or as an entry a job: an engine
// packs only while every engine alive reads packs in lines (Lacking,
// ReadsLinePacks). It reports whether that changed.
func (q *Queue) PackLines(on bool) bool {
	n := int64(1)
	if on {
		n = LinePack
	}
	return q.linePack.Swap(n) != n
}

// Stream is the key of a lane's stream in shard.
func (q *Queue) Stream(shard int, l Lane) string { return q.ks.In(shard, "q", string(l)) }

// held is the stream holding d.
func (q *Queue) held(d Delivery) string {
	if d.Stream != "" {
		return d.Stream
	}
	return q.Stream(d.Shard(), d.Lane)
}

// Delayed is the key of a lane's retry set in shard (score: due time,
// unix ms).
func (q *Queue) Delayed(shard int, l Lane) string { return q.ks.In(shard, "delayed", string(l)) }

// Init creates every shard's lane streams and their consumer group if
// missing.
func (q *Queue) Init(ctx context.Context) error {
	for n := 0; n < keyspace.Shards; n++ {
		for _, l := range Lanes {
			err := q.rdb.XGroupCreateMkStream(ctx, q.Stream(n, l), Group, "0").Err()
			if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
				return fmt.Errorf("create group on %s: %w", q.Stream(n, l), err)
			}
		}
	}
	return nil
}

// Read returns about count new jobs of lane l from each shard (never
// delivered to any consumer before), in one pipelined round trip without
// waiting: see Bell for how a reader learns there is something to read.
// A launch's entries are packs of several jobs (PackField): Read asks
// each shard for as many entries as make count jobs by the packs it read
// last, so a read stays near count jobs a shard whatever the entries
// hold. full is true when some shard had that many entries or more (read
// again now).
func (q *Queue) Read(ctx context.Context, l Lane, count int) (ds []Delivery, full bool, err error) {
	per := &q.perEntry[laneIndex(l)]
	entries := int64(count) / max(1, per.Load())
	entries = max(1, entries)
	pipe := q.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, keyspace.Shards)
	for n := range cmds {
		cmds[n] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: Group, Consumer: q.consumer, Streams: []string{q.Stream(n, l), ">"}, Count: entries, Block: -1,
		})
	}
	_, _ = pipe.Exec(ctx)
	total, jobs := 0, 0
	for _, c := range cmds {
		total += messages(c.Val())
		jobs += packJobs(c.Val())
	}
	if total > 0 {
		per.Store(int64(max(1, jobs/total)))
	}
	ds = make([]Delivery, 0, jobs)
	for _, c := range cmds {
		res, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return ds, full, fmt.Errorf("read lane %s: %w", l, err)
		}
		if ds, err = appendDeliveries(ds, res); err != nil {
			return ds, full, err
		}
		full = full || int64(messages(res)) >= entries
	}
	return ds, full, nil
}

// laneIndex is l's place in Lanes.
func laneIndex(l Lane) int {
	if l == Transactional {
		return 0
	}
	return 1
}

// ReadPendingLine returns up to count of this consumer's own
// unacknowledged jobs of line l with ids after after ("0" for the first
// page).
func (q *Queue) ReadPendingLine(ctx context.Context, l Line, after string, count int) ([]Delivery, error) {
	stream := q.LineStream(l)
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: Group, Consumer: q.consumer, Streams: []string{stream, after}, Count: int64(count), Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	ds, err := deliveries(res)
	for i := range ds {
		ds[i].Key = l.Key
	}
	return ds, err
}

func deliveries(res []redis.XStream) ([]Delivery, error) {
	return appendDeliveries(make([]Delivery, 0, messages(res)), res)
}

// appendDeliveries appends the jobs of res to out: a Delivery is 200
// bytes, and growing slices of them by doubling was a fifth of the
// bytes the engine allocated per message.
func appendDeliveries(out []Delivery, res []redis.XStream) ([]Delivery, error) {
	for _, s := range res {
		for _, m := range s.Messages {
			if pack, ok := m.Values[PackField].(string); ok {
				var err error
				if out, err = appendPack(out, m.ID, s.Stream, pack); err != nil {
					return out, err
				}
				continue
			}
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
	raw, _ := m.Values[JobField].(string)
	j, err := decodeJob(raw)
	if err != nil {
		return Delivery{}, fmt.Errorf("stream entry %s: %w", m.ID, err)
	}
	return Delivery{Job: j, StreamID: m.ID, Raw: raw}, nil
}

// Depth reports jobs waiting in a lane over every shard: those of stream
// entries not yet read plus pending ones (a pack's jobs by the lane's
// count of packs), and delayed retries.
func (q *Queue) Depth(ctx context.Context, l Lane) (stream, delayed int64, err error) {
	pipe := q.rdb.Pipeline()
	keys := make([]string, keyspace.Shards)
	zc := make([]*redis.IntCmd, keyspace.Shards)
	pc := make([]*redis.SliceCmd, keyspace.Shards)
	for n := range zc {
		keys[n] = q.Stream(n, l)
		zc[n] = pipe.ZCard(ctx, q.Delayed(n, l))
		pc[n] = pipe.HMGet(ctx, q.packs(n, l), "entries", "jobs")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("queue depth: %w", err)
	}
	for n, d := range q.streamDepths(ctx, keys) {
		entries := d.Held + d.Unread
		if v := pc[n].Val(); len(v) == 2 {
			packs, _ := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
			jobs, _ := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
			if packs > 0 && packs <= entries && jobs > packs {
				entries += jobs - packs
			}
		}
		stream += entries
		delayed += zc[n].Val()
	}
	return stream, delayed, nil
}

// dueTimes is, per retry set (shard and lane), the earliest due time this
// queue knows of: what it wrote itself, and what a look at every set
// (refresh) found.
type dueTimes struct {
	mu     sync.Mutex
	at     map[string]time.Time
	looked time.Time
	stale  bool
}

func (t *dueTimes) note(key string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil {
		t.at = map[string]time.Time{}
	}
	if cur, ok := t.at[key]; !ok || at.Before(cur) {
		t.at[key] = at
	}
}

// messages counts the entries of res.
func messages(res []redis.XStream) int {
	n := 0
	for _, s := range res {
		n += len(s.Messages)
	}
	return n
}
