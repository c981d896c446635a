package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
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
// nothing is left to send.
var guardrailPause = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'sending' and st ~= 'launching' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'guardrail_override') == 1 then return 0 end
if st == 'sending' and tonumber(redis.call('HGET', KEYS[1], 'queued') or '0') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'paused', 'pause_reason', ARGV[1])
return 1
`)

// PauseFor pauses the campaign for a guardrail, keeping why (Status's
// PauseReason). It does nothing and returns false when the campaign is
// not sending, has nothing left to send, or an operator resumed it with
// ResumeForce before.
func (s *Store) PauseFor(ctx context.Context, id, reason string) (bool, error) {
	n, err := guardrailPause.Run(ctx, s.rdb, []string{s.hash(id)}, reason).Int()
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
