// Package control carries out operators' actions on running campaigns:
// pause, resume and cancel. Engines see a state change within a second
// (their cache of campaign states lives that long) and park a paused
// campaign's jobs; resume and cancel then deal with what was parked.
package control

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// settle is how long to wait before a second sweep of parked jobs: longer
// than an engine may act on a stale state, so a job parked by an engine
// that had not yet seen the change is not left behind.
var settle = 1500 * time.Millisecond

const batch = 1000

// Pause stops every engine from sending the campaign within seconds.
func Pause(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) error {
	if err := store.New(rdb, ks).Pause(ctx, id); err != nil {
		return err
	}
	return note(ctx, rdb, ks, events.Paused, id, "")
}

// note appends a campaign's event after its state changed.
func note(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, t events.Type, id, reason string) error {
	_, err := events.New(rdb, ks).Append(ctx, events.Event{Type: t, Campaign: id, Reason: reason})
	return err
}

// Resume lets engines send the campaign again and puts its parked jobs
// back in line. It returns how many jobs were unparked.
// A campaign a guardrail paused is refused with store.ErrGuardrail: see
// ResumeForce.
func Resume(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	return resume(ctx, rdb, ks, id, (*store.Store).Resume)
}

func resume(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string, change func(*store.Store, context.Context, string) error) (int, error) {
	st := store.New(rdb, ks)
	if err := change(st, ctx, id); err != nil {
		return 0, err
	}
	if err := note(ctx, rdb, ks, events.Resumed, id, ""); err != nil {
		return 0, err
	}
	lane, err := st.Lane(ctx, id)
	if err != nil {
		return 0, err
	}
	q := streams.New(rdb, ks, "campaignctl")
	n, err := sweep(ctx, func() (int, error) {
		return eachShard(func(sh int) (int, error) { return q.Unpark(ctx, sh, lane, st.ParkKey(id, sh), batch) })
	})
	if err != nil {
		return n, err
	}
	// Its lines were left alone while it was paused: due now.
	_, err = q.WakeCampaign(ctx, id)
	return n, err
}

// Cancel ends the campaign (if it is not cancelled already): parked jobs
// are settled as cancelled now, the rest as engines reach them. Its jobs
// in the delayed set (retries, a scheduled launch) are brought forward,
// so they are recorded as cancelled within seconds rather than when they
// fall due. It returns how many parked jobs it cancelled.
func Cancel(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	st := store.New(rdb, ks)
	state, err := st.State(ctx, id)
	if err != nil {
		return 0, err
	}
	q := streams.New(rdb, ks, "campaignctl")
	n := 0
	if state != store.StateCancelled {
		if err := st.Cancel(ctx, id); err != nil {
			return 0, err
		}
		n, err = sweep(ctx, func() (int, error) {
			return eachShard(func(sh int) (int, error) { return q.CancelParked(ctx, sh, st.ParkKey(id, sh), st.Tally(id), batch) })
		})
		if err != nil {
			return n, err
		}
	}
	lane, err := st.Lane(ctx, id)
	if err != nil {
		return n, err
	}
	// Jobs waiting in lines (a suspended provider's too) are settled as
	// cancelled as soon as an engine reads them: now.
	if _, err := q.WakeCampaign(ctx, id); err != nil {
		return n, err
	}
	return n, q.Expedite(ctx, lane, id, time.Now())
}

// eachShard runs step on every shard and sums what it did.
func eachShard(step func(shard int) (int, error)) (int, error) {
	total := 0
	for sh := 0; sh < keyspace.Shards; sh++ {
		n, err := step(sh)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// sweep runs step until it finds nothing, twice, settle apart.
func sweep(ctx context.Context, step func() (int, error)) (int, error) {
	total := 0
	for round := 0; round < 2; round++ {
		if round == 1 {
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(settle):
			}
		}
		for {
			n, err := step()
			total += n
			if err != nil {
				return total, err
			}
			if n == 0 {
				break
			}
		}
	}
	return total, nil
}
