package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// postponeScript moves a held job to the delayed set without counting an
// attempt: the throttle said "not now" (rate, concurrency, suspension).
var postponeScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[5]) == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
`)

// Postpone puts a held job back in line, due at at, without recording an
// attempt. Jobs waiting for a throttled or suspended provider wait here,
// durably, instead of holding a worker (no head-of-line blocking).
func (q *Queue) Postpone(ctx context.Context, d Delivery, at time.Time) (bool, error) {
	n, err := postponeScript.Run(ctx, q.rdb, []string{q.Stream(d.Lane), q.Delayed(d.Lane)},
		Group, d.StreamID, at.UnixMilli(), d.Raw, q.consumer).Int()
	if err != nil {
		return false, fmt.Errorf("postpone %s: %w", d.ID, err)
	}
	return n == 1, nil
}

var dropScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3]) == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
`)

// Drop acknowledges a held job without recording anything: for a job
// whose campaign no longer exists (deleted by an operator), where there is
// nothing left to record into.
func (q *Queue) Drop(ctx context.Context, d Delivery) (bool, error) {
	n, err := dropScript.Run(ctx, q.rdb, []string{q.Stream(d.Lane)}, Group, d.StreamID, q.consumer).Int()
	if err != nil {
		return false, fmt.Errorf("drop %s: %w", d.ID, err)
	}
	return n == 1, nil
}
