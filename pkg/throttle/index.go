package throttle

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// A key's shared state lives under a hash tag of its own, so the keys of
// a deployment spread over a Redis Cluster and step.lua touches one slot:
// {prefix~thr:KEY} (the state hash) and {prefix~thr:KEY}:eng (each
// engine's report). The index of keys in use, {prefix}:thr:keys, is
// written apart from step.lua (it is in another slot), in the same round
// trip as a step: by each engine once per key every indexEvery, and by
// Set.

// indexEvery is how often an engine adds a key it uses to the index again
// (its score is the time, so keys unused for stateTTL drop out).
const indexEvery = 10 * time.Minute

func stateKey(ks keyspace.Space, key string) string { return ks.Own("thr:" + key) }
func engKey(ks keyspace.Space, key string) string   { return ks.Own("thr:"+key, "eng") }
func indexKey(ks keyspace.Space) string             { return ks.Key("thr", "keys") }

// index adds keys to the index at now and drops the keys unused for
// stateTTL, in one round trip.
func index(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, now time.Time, keys ...string) error {
	var indexed func() error
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		indexed = indexIn(ctx, p, ks, now, keys...)
		return nil
	})
	return indexed()
}

// indexIn queues index's commands in p; the function it returns, called
// once p has run, says whether they succeeded.
func indexIn(ctx context.Context, p redis.Pipeliner, ks keyspace.Space, now time.Time, keys ...string) func() error {
	zs := make([]redis.Z, len(keys))
	for i, k := range keys {
		zs[i] = redis.Z{Score: float64(now.UnixMilli()), Member: k}
	}
	add := p.ZAdd(ctx, indexKey(ks), zs...)
	drop := p.ZRemRangeByScore(ctx, indexKey(ks), "-inf", strconv.FormatInt(now.Add(-stateTTL).UnixMilli(), 10))
	return func() error {
		for _, c := range []redis.Cmder{add, drop} {
			if err := c.Err(); err != nil {
				return fmt.Errorf("throttle: index %v: %w", keys, err)
			}
		}
		return nil
	}
}

// indexDue reports whether b is due to be indexed at now, and if so
// counts it as indexed. Caller holds b.mu.
func (b *bucket) indexDue(now time.Time) bool {
	if !b.indexed.IsZero() && now.Sub(b.indexed) < indexEvery {
		return false
	}
	b.indexed = now
	return true
}

// indexBuckets indexes those of bs that are due; a failure makes them due
// again at the next step.
func (l *Limiter) indexBuckets(ctx context.Context, bs ...*bucket) {
	now := l.now()
	var due []*bucket
	var names []string
	for _, b := range bs {
		b.mu.Lock()
		if b.indexDue(now) {
			due = append(due, b)
			names = append(names, b.key)
		}
		b.mu.Unlock()
	}
	if len(due) == 0 {
		return
	}
	if err := index(ctx, l.rdb, l.ks, now, names...); err != nil {
		l.log.Warn("throttle index", "err", err)
		for _, b := range due {
			b.mu.Lock()
			b.indexed = time.Time{}
			b.mu.Unlock()
		}
	}
}
