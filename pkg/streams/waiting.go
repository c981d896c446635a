package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Waiting counts campaign's jobs in lane's delayed sets — retries, jobs
// postponed past a suspension, a scheduled launch — and the latest time
// one of them is due (zero when none waits). It scans the sets, so it
// costs a pass over the lane's delayed jobs.
func (q *Queue) Waiting(ctx context.Context, l Lane, campaign string) (n int64, last time.Time, err error) {
	var latest float64
	for shard := 0; shard < keyspace.Shards; shard++ {
		m, err := q.waiting(ctx, q.Delayed(shard, l), campaign, &latest)
		if err != nil {
			return 0, time.Time{}, err
		}
		n += m
	}
	if n > 0 && latest > 0 {
		last = time.UnixMilli(int64(latest))
	}
	return n, last, nil
}

func (q *Queue) waiting(ctx context.Context, key, campaign string, latest *float64) (n int64, err error) {
	match := "*" + `"c":"` + globEscape(campaign) + `"` + "*"
	var cursor uint64
	for {
		kv, next, err := q.rdb.ZScan(ctx, key, cursor, match, 1000).Result()
		if err != nil {
			return 0, fmt.Errorf("scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var j Job
			if json.Unmarshal([]byte(kv[i]), &j) != nil || j.Campaign != campaign {
				continue
			}
			n++
			var score float64
			if _, err := fmt.Sscan(kv[i+1], &score); err == nil && score > *latest {
				*latest = score
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}
