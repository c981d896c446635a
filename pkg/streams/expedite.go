package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Expedite makes campaign's jobs in lane's delayed set due at now (retries
// and a scheduled launch), so engines' movers stream them at once; a
// cancelled campaign's jobs are then settled as cancelled without waiting
// for their time. ZADD XX only touches members still there, so a job the
// mover took meanwhile is not put back.
func (q *Queue) Expedite(ctx context.Context, l Lane, campaign string, now time.Time) error {
	for shard := 0; shard < keyspace.Shards; shard++ {
		if err := q.expedite(ctx, q.Delayed(shard, l), campaign, now); err != nil {
			return err
		}
	}
	q.ringDelayed(ctx, l)
	return nil
}

func (q *Queue) expedite(ctx context.Context, key, campaign string, now time.Time) error {
	// Jobs are JSON with the campaign as "c"; the match narrows the scan,
	// decoding confirms it.
	match := "*" + `"c":"` + globEscape(campaign) + `"` + "*"
	var cursor uint64
	for {
		kv, next, err := q.rdb.ZScan(ctx, key, cursor, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", key, err)
		}
		var due []redis.Z
		for i := 0; i+1 < len(kv); i += 2 {
			var j Job
			if json.Unmarshal([]byte(kv[i]), &j) == nil && j.Campaign == campaign {
				due = append(due, redis.Z{Score: float64(now.UnixMilli()), Member: kv[i]})
			}
		}
		if len(due) > 0 {
			if err := q.rdb.ZAddXX(ctx, key, due...).Err(); err != nil {
				return fmt.Errorf("bring %s's jobs forward: %w", campaign, err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// globEscape escapes Redis glob characters, so an id is matched as written.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
