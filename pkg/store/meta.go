package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
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

// deleteScript removes a campaign whose every recipient is final (ARGV[2]:
// its queued count, summed over the shards just before): its hash and
// index entry. It checks the state in the same step; a campaign sending or
// cancelled with nothing queued can no longer get anything queued, so a
// resume racing the delete cannot leave jobs behind with no campaign.
var deleteScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
if tonumber(ARGV[2]) ~= 0 or (st ~= 'sending' and st ~= 'cancelled') then return -2 end
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
`)

// Delete removes a finished or cancelled campaign's data (definition,
// index entry, then every shard's counters, records and parked jobs) and
// returns how many recipient records it held. A campaign with recipients
// not final yet is refused with ErrChanged.
func (s *Store) Delete(ctx context.Context, id string) (int, error) {
	queued, err := s.queued(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", id, err)
	}
	n, err := deleteScript.Run(ctx, s.rdb, []string{s.hash(id), s.index()}, id, queued).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("delete %s: %w", id, err)
	case n == -1:
		return 0, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	case n == -2:
		return 0, fmt.Errorf("campaign %s: %w", id, ErrChanged)
	}
	// The definition is gone: engines drop what they still meet of it.
	// UNLINK frees big records hashes off the main thread.
	pipe := s.rdb.Pipeline()
	t := s.Tally(id)
	lens := make([]*redis.IntCmd, keyspace.Shards)
	for sh := range lens {
		lens[sh] = pipe.HLen(ctx, t.In(sh).Records)
		pipe.Unlink(ctx, t.In(sh).Records, t.In(sh).Counters, s.ParkKey(id, sh))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("delete %s's records: %w", id, err)
	}
	total := 0
	for _, c := range lens {
		total += int(c.Val())
	}
	return total, nil
}

// Recipients counts the campaign's recipient records over every shard.
func (s *Store) Recipients(ctx context.Context, id string) (int64, error) {
	pipe := s.rdb.Pipeline()
	t := s.Tally(id)
	lens := make([]*redis.IntCmd, keyspace.Shards)
	for n := range lens {
		lens[n] = pipe.HLen(ctx, t.In(n).Records)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("recipients of %s: %w", id, err)
	}
	var total int64
	for _, c := range lens {
		total += c.Val()
	}
	return total, nil
}
