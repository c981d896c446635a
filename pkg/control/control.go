// Package control carries out operators' actions on running campaigns:
// pause, resume and cancel. Engines see a state change within a second
// (their cache of campaign states lives that long) and park a paused
// campaign's jobs; resume and cancel then deal with what was parked.
package control

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

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
	return store.New(rdb, ks).Pause(ctx, id)
}

// Resume lets engines send the campaign again and puts its parked jobs
// back in line. It returns how many jobs were unparked.
func Resume(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	st := store.New(rdb, ks)
	if err := st.Resume(ctx, id); err != nil {
		return 0, err
	}
	lane, err := laneOf(ctx, rdb, st, id)
	if err != nil {
		return 0, err
	}
	q := streams.New(rdb, ks, "campaignctl")
	return sweep(ctx, func() (int, error) { return q.Unpark(ctx, lane, st.ParkKey(id), batch) })
}

// Cancel ends the campaign: parked jobs are settled as cancelled now, the
// rest as engines reach them (within seconds for queued jobs; retries
// waiting in the delayed set when they fall due). It returns how many
// parked jobs it cancelled.
func Cancel(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	st := store.New(rdb, ks)
	if err := st.Cancel(ctx, id); err != nil {
		return 0, err
	}
	q := streams.New(rdb, ks, "campaignctl")
	return sweep(ctx, func() (int, error) { return q.CancelParked(ctx, st.ParkKey(id), st.Tally(id), batch) })
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

func laneOf(ctx context.Context, rdb redis.UniversalClient, st *store.Store, id string) (streams.Lane, error) {
	l, err := rdb.HGet(ctx, st.Key(id), "lane").Result()
	if err != nil {
		return "", err
	}
	return streams.ParseLane(l)
}
