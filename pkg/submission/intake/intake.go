// Package intake queues ready-made transactional messages for the engine.
// It is the back end shared by SMTP submission, the HTTP API and
// `campaignctl send`: one job per recipient on the transactional lane,
// each stored with its message in one atomic step, so a caller that has
// Enqueue's answer may tell its client the message is accepted.
package intake

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// Tally is where the transactional job id is counted and its outcome
// kept: the records hash of the job's day of enqueue, which the id carries
// (see NewID), in the id's shard, so a lookup by id needs nothing else. The engine settles API
// and submission jobs into exactly this tally.
func Tally(ks keyspace.Space, id string) streams.Tally {
	day, _ := idDay(id) // an id that names no day finds no records
	return streams.TransactionalTally(ks, day).For(id)
}

// NewID returns a job ID for a job enqueued at t: the UTC day, then 130
// random bits. IDs are exposed (SMTP replies, GET /v1/messages/{id}) and
// act as the only capability needed to read a job's outcome, so they are
// unguessable rather than a counter.
func NewID(t time.Time) string { return t.UTC().Format(streams.DayFormat) + "-" + rand.Text() }

func idDay(id string) (time.Time, bool) {
	if len(id) < len(streams.DayFormat)+1 || id[len(streams.DayFormat)] != '-' {
		return time.Time{}, false
	}
	t, err := time.Parse(streams.DayFormat, id[:len(streams.DayFormat)])
	return t, err == nil
}

// Queue enqueues transactional messages.
type Queue struct {
	q   *streams.Queue
	ks  keyspace.Space
	now func() time.Time
}

// NewQueue returns a Queue writing through q into ks's transactional tally.
func NewQueue(q *streams.Queue, ks keyspace.Space) *Queue {
	return &Queue{q: q, ks: ks, now: time.Now}
}

// Queued is one job Enqueue created.
type Queued struct {
	ID string `json:"id"`
	To string `json:"to"`
}

// Enqueue queues one job per recipient, sent from the envelope sender
// from. build returns the message for one recipient; it may return the
// same slice for every recipient (nothing keeps or changes it). All jobs
// are queued in one atomic step: when Enqueue returns nil every one is
// durable in Redis, and when it fails none is, so a client told to retry
// never causes a duplicate.
func (q *Queue) Enqueue(ctx context.Context, from string, to []string, build func(to string) ([]byte, error)) ([]Queued, error) {
	now := q.now()
	first := now.UnixMilli()
	items := make([]streams.Item, 0, len(to))
	out := make([]Queued, 0, len(to))
	shard := -1
	byMID := map[string][]verp.Ref{}
	for _, rcpt := range to {
		msg, err := build(rcpt)
		if err != nil {
			return nil, fmt.Errorf("build message for %s: %w", rcpt, err)
		}
		mid := verp.HeaderMessageID(msg)
		if shard < 0 {
			// The jobs in their Message-ID's index shard, so its
			// entry is written in their atomic step.
			shard = verp.IDShard(mid)
		}
		// Every job of one message in one shard (its first id's), so
		// they are queued in one atomic step.
		id := NewID(now)
		for shard >= 0 && keyspace.ShardOf(id) != shard {
			id = NewID(now)
		}
		shard = keyspace.ShardOf(id)
		j := &streams.Job{ID: id, To: rcpt, Lane: streams.Transactional, From: from, First: first}
		items = append(items, streams.Item{Job: j, Msg: msg})
		if mid != "" {
			byMID[mid] = append(byMID[mid], verp.Ref{ID: id, To: rcpt})
		}
		out = append(out, Queued{ID: j.ID, To: rcpt})
	}
	// The Message-ID index lets a bounce or complaint that quotes only
	// the Message-ID find its job (pkg/feedbackloop). The jobs are in
	// their (first) Message-ID's shard, so its entry is written in their
	// atomic step: indexed and queued, or neither. Recipients given
	// messages with other Message-IDs in other shards have theirs
	// written first: if that fails nothing is queued and the client
	// retries (an entry of jobs never queued finds nothing; the retry's
	// replaces it).
	var same []streams.IndexEntry
	var apart []verp.Entry
	for _, e := range verp.Entries(q.ks, byMID, now) {
		if e.Shard == shard {
			same = append(same, streams.IndexEntry{Key: e.Key, Field: e.Field, Value: e.Value, ExpireAt: e.ExpireAt})
		} else {
			apart = append(apart, e)
		}
	}
	if err := verp.Write(ctx, q.q.Redis(), apart); err != nil {
		return nil, fmt.Errorf("index Message-IDs: %w", err)
	}
	if err := q.q.AddMessages(ctx, streams.TransactionalTally(q.ks, now), items, same...); err != nil {
		return nil, fmt.Errorf("queue messages: %w", err)
	}
	return out, nil
}
