package throttle

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// A (sending domain, key) bucket (DomainBucket) paces its domain's mail
// only while it is hot: for a while after a sending-domain deferral
// toward the key. The engine that got the deferral records it here, and
// every engine reads the set once a second, so all of them pace the
// domain within about a second: {prefix}:thr:hot, a sorted set of the hot
// buckets scored with the time (ms) they are hot until. Written apart
// from the step, like the index; an entry past its time is dropped by
// the next Heat.

func hotKey(ks keyspace.Space) string { return ks.Key("thr", "hot") }

// Heat records that bucket is hot until until, for every engine (Hot); a
// later time already recorded stays.
func Heat(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, bucket string, until, now time.Time) error {
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddGT(ctx, hotKey(ks), redis.Z{Score: float64(until.UnixMilli()), Member: bucket})
		p.ZRemRangeByScore(ctx, hotKey(ks), "-inf", strconv.FormatInt(now.UnixMilli(), 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("throttle: heat %s: %w", bucket, err)
	}
	return nil
}

// Hot returns the buckets hot after now and until when, in one round
// trip.
func Hot(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, now time.Time) (map[string]time.Time, error) {
	zs, err := rdb.ZRangeByScoreWithScores(ctx, hotKey(ks), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("throttle: hot buckets: %w", err)
	}
	hot := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		if b, ok := z.Member.(string); ok {
			hot[b] = time.UnixMilli(int64(z.Score))
		}
	}
	return hot, nil
}
