// Package store keeps campaigns in Redis: each campaign's definition, its
// state and counters (one hash, so status is one read), and one record per
// recipient. The queue (package streams) updates the counters and records
// in the same atomic step that acknowledges a job.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// Campaign states as stored. "finished" is never stored: a campaign whose
// launch completed and whose queue is empty is finished.
const (
	StateLaunching = "launching" // recipients are being enqueued
	StateSending   = "sending"   // all recipients enqueued
	StateFinished  = "finished"  // sending, and nothing left in flight
	StateScheduled = "scheduled" // sending, but send_at is still ahead
	StatePaused    = "paused"    // engines hold its jobs back (kept, not lost)
	StateCancelled = "cancelled" // engines settle its remaining jobs as cancelled
)

// ErrNotFound is returned for an unknown campaign id.
var ErrNotFound = errors.New("campaign not found")

// Store reads and writes campaign data.
type Store struct {
	rdb redis.UniversalClient
	ks  keyspace.Space
}

// New returns a store in space.
func New(rdb redis.UniversalClient, ks keyspace.Space) *Store { return &Store{rdb: rdb, ks: ks} }

// hash is the key of a campaign's hash (definition, state, counters):
// store is the only package that reads or writes it.
func (s *Store) hash(id string) string { return s.ks.Key("campaign", id) }

// Tally is where the queue counts a campaign's outcomes.
func (s *Store) Tally(id string) streams.Tally {
	return streams.Tally{Counters: s.hash(id), Records: s.ks.Key("rcpt", id), CheckpointField: "checkpoint"}
}

func (s *Store) index() string { return s.ks.Key("campaigns") }

// ParkKey is the list where engines park a paused campaign's jobs.
func (s *Store) ParkKey(id string) string { return s.ks.Key("parked", id) }

// Created says what Create found.
type Created int

const (
	Fresh  Created = iota // a new campaign was stored
	Resume                // the same campaign exists, launch unfinished: resume
	Done                  // the same campaign was launched completely already
)

// createScript stores a new campaign with every counter of
// outcome.Counters at 0.
var createScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], 'fingerprint')
if not fp then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'fingerprint', ARGV[2], 'spec', ARGV[3], 'lane', ARGV[4],
    'state', 'launching', 'created', ARGV[5], 'checkpoint', 0` + luaZeroCounters() + `)
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  return {0, 0}
end
if fp ~= ARGV[2] then return {-1, 0} end
local st = redis.call('HGET', KEYS[1], 'state')
local cp = tonumber(redis.call('HGET', KEYS[1], 'checkpoint') or '0')
if st == 'launching' then return {1, cp} end
return {2, cp}
`)

// Create stores a campaign once. fingerprint identifies its content (the
// campaign file and recipient list): relaunching the same id with the same
// content resumes from the stored checkpoint (the last recipients-file
// line enqueued); different content under a used id is an error.
func (s *Store) Create(ctx context.Context, id, lane, fingerprint string, spec []byte) (Created, int, error) {
	res, err := createScript.Run(ctx, s.rdb, []string{s.hash(id), s.index()},
		id, fingerprint, spec, lane, time.Now().UnixMilli()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("store campaign %s: %w", id, err)
	}
	if res[0] < 0 {
		return 0, 0, fmt.Errorf("campaign id %q was already launched with different content (campaign file or recipients changed); use a new id", id)
	}
	return Created(res[0]), int(res[1]), nil
}

// markLaunched moves a launching campaign to sending; a campaign paused or
// cancelled during its launch keeps that state (resume knows it launched).
var markLaunched = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'launching' then
  redis.call('HSET', KEYS[1], 'state', 'sending')
end
redis.call('HSET', KEYS[1], 'launched', ARGV[1], 'send_at', ARGV[2])
return 1
`)

// MarkLaunched records that every recipient is enqueued, to be sent from
// sendAt on (zero: now).
func (s *Store) MarkLaunched(ctx context.Context, id string, sendAt time.Time) error {
	at := int64(0)
	if !sendAt.IsZero() {
		at = sendAt.UnixMilli()
	}
	if err := markLaunched.Run(ctx, s.rdb, []string{s.hash(id)}, time.Now().UnixMilli(), at).Err(); err != nil {
		return fmt.Errorf("mark %s launched: %w", id, err)
	}
	return nil
}

// setState applies an operator's state change if the current state allows
// it; it returns the state before, or an error naming why not.
var setState = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {err = 'not found'} end
local want = ARGV[1]
if want == 'paused' then
  if st ~= 'sending' and st ~= 'launching' then return {err = 'cannot pause a ' .. st .. ' campaign'} end
elseif want == 'resume' or want == 'resume_force' then
  if st ~= 'paused' then return {err = 'campaign is ' .. st .. ', not paused'} end
  local why = redis.call('HGET', KEYS[1], 'pause_reason')
  if why and want == 'resume' then return {err = 'guardrail: ' .. why} end
  if want == 'resume_force' then redis.call('HDEL', KEYS[1], 'pause_reason'); redis.call('HSET', KEYS[1], 'guardrail_override', 1) end
  if redis.call('HEXISTS', KEYS[1], 'launched') == 1 then want = 'sending' else want = 'launching' end
elseif want == 'cancelled' then
  if st == 'cancelled' then return {err = 'campaign is cancelled already'} end
else
  return {err = 'unknown state ' .. want}
end
redis.call('HSET', KEYS[1], 'state', want)
return st
`)

// Pause stops every engine from sending the campaign's jobs (within a
// second or so); its jobs are kept.
func (s *Store) Pause(ctx context.Context, id string) error { return s.change(ctx, id, StatePaused) }

// Resume undoes Pause.
func (s *Store) Resume(ctx context.Context, id string) error { return s.change(ctx, id, "resume") }

// Cancel ends the campaign: engines settle its remaining jobs as cancelled
// instead of sending them.
func (s *Store) Cancel(ctx context.Context, id string) error {
	return s.change(ctx, id, StateCancelled)
}

func (s *Store) change(ctx context.Context, id, to string) error {
	err := setState.Run(ctx, s.rdb, []string{s.hash(id)}, to).Err()
	if err != nil && strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil && strings.Contains(err.Error(), "guardrail: ") {
		_, why, _ := strings.Cut(err.Error(), "guardrail: ")
		return fmt.Errorf("campaign %s: %w: %s", id, ErrGuardrail, why)
	}
	if err != nil {
		return fmt.Errorf("campaign %s: %w", id, err)
	}
	return nil
}

// State returns a campaign's stored state (launching, sending, paused,
// cancelled).
func (s *Store) State(ctx context.Context, id string) (string, error) {
	st, err := s.rdb.HGet(ctx, s.hash(id), "state").Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("campaign %s: %w", id, err)
	}
	return st, nil
}

// Spec returns the stored campaign definition (as the launcher encoded it).
func (s *Store) Spec(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, s.hash(id), "spec").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	return b, nil
}

// Status is one campaign's progress. The JSON keys are a public contract
// (campaignctl status --json).
type Status struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Total      int64  `json:"total"`
	Queued     int64  `json:"queued"`
	Delivered  int64  `json:"delivered"`
	Deferred   int64  `json:"deferred"`
	Bounced    int64  `json:"bounced"`
	Suppressed int64  `json:"suppressed"`
	Failed     int64  `json:"failed"`
	// Cancelled counts recipients dropped by cancel; it appears in JSON
	// only for campaigns that were cancelled.
	Cancelled int64 `json:"cancelled,omitempty"`
	// Complaints counts feedback-loop complaints, and PauseReason says
	// why a guardrail paused the campaign; both appear in JSON only when
	// set (see guardrail.go).
	Complaints  int64  `json:"complaints,omitempty"`
	PauseReason string `json:"pause_reason,omitempty"`
}

// luaZeroCounters is ", 'total', 0, 'queued', 0, ..." for an HSET.
func luaZeroCounters() string {
	var b strings.Builder
	for _, c := range outcome.Counters {
		fmt.Fprintf(&b, ", '%s', 0", c)
	}
	return b.String()
}

// statusFields are the hash fields Status reads: these three, then
// outcome.Counters, then the complaints counter and pause reason.
var statusFields = append(append([]string{"id", "state", "send_at"}, outcome.Counters...), Complaints, "pause_reason")

// Status reads one campaign's progress.
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	vals, err := s.rdb.HMGet(ctx, s.hash(id), statusFields...).Result()
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", id, err)
	}
	return parseStatus(id, vals)
}

func parseStatus(id string, vals []any) (Status, error) {
	if vals[0] == nil {
		return Status{}, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	n := func(i int) int64 {
		v, _ := vals[i].(string)
		x, _ := strconv.ParseInt(v, 10, 64)
		return x
	}
	var c outcome.Counts
	for i, name := range outcome.Counters {
		c.Set(name, n(3+i))
	}
	st := Status{ID: id, Total: c.Total, Queued: c.Queued, Delivered: c.Delivered, Deferred: c.Deferred,
		Bounced: c.Bounced, Suppressed: c.Suppressed, Failed: c.Failed, Cancelled: c.Cancelled}
	st.State, _ = vals[1].(string)
	st.Complaints = n(3 + len(outcome.Counters))
	st.PauseReason, _ = vals[4+len(outcome.Counters)].(string)
	switch {
	case st.State == StateSending && st.Queued == 0:
		st.State = StateFinished
	case st.State == StateSending && n(2) > time.Now().UnixMilli():
		st.State = StateScheduled
	}
	return st, nil
}

// List returns every campaign's status, oldest first, in one pipeline.
func (s *Store) List(ctx context.Context) ([]Status, error) {
	ids, err := s.rdb.ZRange(ctx, s.index(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.hash(id), statusFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	out := make([]Status, 0, len(ids))
	for i, id := range ids {
		st, err := parseStatus(id, cmds[i].Val())
		if err != nil {
			continue // removed between ZRANGE and HMGET
		}
		out = append(out, st)
	}
	return out, nil
}

// Record returns the stored record of one recipient.
func (s *Store) Record(ctx context.Context, id, addr string) (streams.Record, error) {
	rec, err := streams.ReadRecord(ctx, s.rdb, s.Tally(id), strings.ToLower(addr))
	if err != nil {
		return streams.Record{}, fmt.Errorf("campaign %s: %w", id, err)
	}
	return rec, nil
}
