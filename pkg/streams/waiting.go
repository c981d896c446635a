package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Waiting counts campaign's jobs in lane's delayed set — retries, jobs
// postponed past a suspension, a scheduled launch — and the latest time
// one of them is due (zero when none waits). It scans the set, so it
// costs a pass over the lane's delayed jobs.
func (q *Queue) Waiting(ctx context.Context, l Lane, campaign string) (n int64, last time.Time, err error) {
	key := q.Delayed(l)
	match := "*" + `"c":"` + globEscape(campaign) + `"` + "*"
	var cursor uint64
	var latest float64
	for {
		kv, next, err := q.rdb.ZScan(ctx, key, cursor, match, 1000).Result()
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var j Job
			if json.Unmarshal([]byte(kv[i]), &j) != nil || j.Campaign != campaign {
				continue
			}
			n++
			var score float64
			if _, err := fmt.Sscan(kv[i+1], &score); err == nil && score > latest {
				latest = score
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if n > 0 && latest > 0 {
		last = time.UnixMilli(int64(latest))
	}
	return n, last, nil
}
