package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// Meta is when a campaign was created, launched and is to be sent, and its
// lane. A time not (yet) set is zero.
type Meta struct {
	Lane                      string
	Created, Launched, SendAt time.Time
}

var metaFields = []string{"lane", "created", "launched", "send_at"}

// Metas reads the Meta of each id, in one pipeline.
func (s *Store) Metas(ctx context.Context, ids ...string) ([]Meta, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.hash(id), metaFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("campaign metadata: %w", err)
	}
	out := make([]Meta, len(ids))
	for i, c := range cmds {
		v := c.Val()
		out[i] = Meta{Created: msTime(v[1]), Launched: msTime(v[2]), SendAt: msTime(v[3])}
		out[i].Lane, _ = v[0].(string)
	}
	return out, nil
}

// Lane returns the lane a campaign's jobs are queued in.
func (s *Store) Lane(ctx context.Context, id string) (streams.Lane, error) {
	l, err := s.rdb.HGet(ctx, s.hash(id), "lane").Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("campaign %s: %w", id, err)
	}
	return streams.ParseLane(l)
}

// msTime reads a stored unix-ms field; zero when absent or 0.
func msTime(v any) time.Time {
	str, _ := v.(string)
	ms, err := strconv.ParseInt(str, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// ErrChanged is returned by Delete when the campaign was no longer
// finished when it came to deleting it (resumed meanwhile).
var ErrChanged = errors.New("campaign changed while deleting")

// deleteScript removes a campaign whose every recipient is final: its
// hash, records and parked list, and its index entry. It checks that in
// the same step, so a resume racing the delete cannot leave jobs behind
// with no campaign. UNLINK frees a big records hash off the main thread.
var deleteScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
local q = tonumber(redis.call('HGET', KEYS[1], 'queued') or '0')
if q ~= 0 or (st ~= 'sending' and st ~= 'cancelled') then return -2 end
local n = redis.call('HLEN', KEYS[2])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return n
`)

// Delete removes a finished or cancelled campaign's data (definition,
// counters, records, parked jobs, index entry) and returns how many
// recipient records it held. A campaign with recipients not final yet is
// refused with ErrChanged.
func (s *Store) Delete(ctx context.Context, id string) (int, error) {
	n, err := deleteScript.Run(ctx, s.rdb, []string{s.hash(id), s.Tally(id).Records, s.ParkKey(id), s.index()}, id).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("delete %s: %w", id, err)
	case n == -1:
		return 0, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	case n == -2:
		return 0, fmt.Errorf("campaign %s: %w", id, ErrChanged)
	}
	return n, nil
}
