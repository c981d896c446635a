package control

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
)

// PauseFor pauses a sending campaign because a guardrail tripped, keeping
// the reason for status. It returns false when there was nothing to do:
// the campaign is not sending, or an operator overrode its guardrails.
func PauseFor(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id, reason string) (bool, error) {
	ok, err := store.New(rdb, ks).PauseFor(ctx, id, reason)
	if err != nil || !ok {
		return ok, err
	}
	return true, note(ctx, rdb, ks, events.Paused, id, reason)
}

// ResumeForce resumes a paused campaign, also one a guardrail paused, and
// turns its guardrails off; it returns how many jobs were unparked.
func ResumeForce(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	return resume(ctx, rdb, ks, id, (*store.Store).ResumeForce)
}
