package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// releaseHeld starts every script that lets go of a held job (KEYS[1] the
// lane stream; ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer). XACK
// acknowledges for the whole group whoever holds the entry, so it first
// checks this consumer still holds it (XPENDING with a consumer filter):
// a presumed-dead engine that wakes up after its job was reclaimed must
// not settle it a second time. Returns 0 when not held.
const releaseHeld = `
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3]) == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
`

// postponeScript moves a held job to the delayed set without counting an
// attempt: the throttle said "not now" (rate, concurrency, suspension).
var postponeScript = redis.NewScript(releaseHeld + `
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
`)

// Postpone puts a held job back in line, due at at, without recording an
// attempt. Jobs waiting for a throttled or suspended provider wait here,
// durably, instead of holding a worker (no head-of-line blocking).
func (q *Queue) Postpone(ctx context.Context, d Delivery, at time.Time) (bool, error) {
	if err := alone(d); err != nil {
		return false, err
	}
	key := q.Delayed(d.Shard(), d.Lane)
	n, err := postponeScript.Run(ctx, q.rdb, []string{q.held(d), key},
		Group, d.StreamID, q.consumer, at.UnixMilli(), d.Raw).Int()
	if err != nil {
		return false, fmt.Errorf("postpone %s: %w", d.ID, err)
	}
	q.due.note(key, at)
	if n == 1 && time.Until(at) < time.Second {
		q.ringDelayed(ctx, d.Lane) // due now (a drain hands it back): any engine's mover, at once
	}
	return n == 1, nil
}

var dropScript = redis.NewScript(releaseHeld + `
return 1
`)

// Drop acknowledges a held job without recording anything: for a job
// whose campaign no longer exists (deleted by an operator), where there is
// nothing left to record into.
func (q *Queue) Drop(ctx context.Context, d Delivery) (bool, error) {
	if err := alone(d); err != nil {
		return false, err
	}
	n, err := dropScript.Run(ctx, q.rdb, []string{q.held(d)}, Group, d.StreamID, q.consumer).Int()
	if err != nil {
		return false, fmt.Errorf("drop %s: %w", d.ID, err)
	}
	return n == 1, nil
}

// ErrPacked is what a step for one job (postpone, park, drop) says of a
// job of a pack: letting go of its entry would let go of the pack's other
// jobs with it. Its run puts it back as a job of its own (Settlement.Back,
// Routed.Back) instead; this error is a bug's.
var ErrPacked = errors.New("a job of a pack: it goes back with its pack")

func alone(d Delivery) error {
	if d.Pack > 1 {
		return fmt.Errorf("%s: %w", d.ID, ErrPacked)
	}
	return nil
}
