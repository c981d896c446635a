package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Complaints is the counter, in a campaign's hash beside outcome.Counters,
// of its recipients who reported it as spam (feedback-loop reports). It
// is not one of outcome.Counters: a complaint does not change a
// recipient's outcome (still delivered), so it is not part of the total.
const Complaints = "complaints"

// ErrGuardrail is returned by Resume for a campaign a guardrail paused:
// only ResumeForce resumes it.
var ErrGuardrail = errors.New("paused by a guardrail")

// guardrailPause pauses a sending (or launching) campaign with a reason,
// unless an operator overrode the guardrails for it (ResumeForce) or
// nothing is left to send (ARGV[2]: the queued count, summed over the
// shards just before).
var guardrailPause = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'sending' and st ~= 'launching' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'guardrail_override') == 1 then return 0 end
if st == 'sending' and tonumber(ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'paused', 'pause_reason', ARGV[1])
return 1
`)

// PauseFor pauses the campaign for a guardrail, keeping why (Status's
// PauseReason). It does nothing and returns false when the campaign is
// not sending, has nothing left to send, or an operator resumed it with
// ResumeForce before.
func (s *Store) PauseFor(ctx context.Context, id, reason string) (bool, error) {
	queued, err := s.queued(ctx, id)
	if err != nil {
		return false, fmt.Errorf("campaign %s: guardrail pause: %w", id, err)
	}
	n, err := guardrailPause.Run(ctx, s.rdb, []string{s.hash(id)}, reason, queued).Int()
	if err != nil {
		return false, fmt.Errorf("campaign %s: guardrail pause: %w", id, err)
	}
	return n == 1, nil
}

// ResumeForce resumes a paused campaign even if a guardrail paused it,
// and turns the guardrails off for it from then on.
func (s *Store) ResumeForce(ctx context.Context, id string) error {
	return s.change(ctx, id, "resume_force")
}

// queued sums the campaign's queued counters over the shards.
func (s *Store) queued(ctx context.Context, id string) (int64, error) {
	pipe := s.rdb.Pipeline()
	t := s.Tally(id)
	cmds := make([]*redis.StringCmd, keyspace.Shards)
	for n := range cmds {
		cmds[n] = pipe.HGet(ctx, t.In(n).Counters, string(outcome.Queued))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("queued count of %s: %w", id, err)
	}
	var sum int64
	for _, c := range cmds {
		x, _ := c.Int64()
		sum += x
	}
	return sum, nil
}
