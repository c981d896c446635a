// Package store keeps campaigns in Redis: each campaign's definition and
// state (one hash in the shared tag), and, per shard, its counters and one
// record per recipient of that shard (so status is one pipelined read of
// thirteen hashes). The queue (package streams) updates a shard's counters
// and records in the same atomic step that acknowledges a job of it.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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

	mu      sync.Mutex
	tallies map[string]func(int) streams.Tally // see shardTallies
}

// New returns a store in space.
func New(rdb redis.UniversalClient, ks keyspace.Space) *Store { return &Store{rdb: rdb, ks: ks} }

// hash is the key of a campaign's hash (definition, state, counters):
// store is the only package that reads or writes it.
func (s *Store) hash(id string) string { return s.ks.Key("campaign", id) }

// Tally is where the queue counts a campaign's outcomes: per shard, a
// counters hash (with the shard's launch checkpoint) and a records hash.
func (s *Store) Tally(id string) streams.Tally {
	return streams.Tally{CheckpointField: checkpoint, Shards: s.shardTallies(id)}
}

// shardTallies gives campaign id's shards' tallies, their key names
// built once: an engine asks for them with every settled message. The
// last maxTallies campaigns' are kept (a few KB each).
func (s *Store) shardTallies(id string) func(int) streams.Tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.tallies[id]; ok {
		return f
	}
	if s.tallies == nil || len(s.tallies) >= maxTallies {
		s.tallies = map[string]func(int) streams.Tally{}
	}
	var ts [keyspace.Shards]streams.Tally
	for n := range ts {
		ts[n] = streams.Tally{Counters: s.ks.In(n, "cnt", id), Records: s.ks.In(n, "rcpt", id), CheckpointField: checkpoint}
	}
	f := func(n int) streams.Tally { return ts[n] }
	s.tallies[id] = f
	return f
}

const maxTallies = 1024

// checkpoint is the field of a shard's counters holding the last
// recipients-file line enqueued into that shard.
const checkpoint = "checkpoint"

func (s *Store) index() string { return s.ks.Key("campaigns") }

// ParkKey is the list where engines park a paused campaign's jobs of
// shard.
func (s *Store) ParkKey(id string, shard int) string { return s.ks.In(shard, "parked", id) }

// Created says what Create found.
type Created int

const (
	Fresh  Created = iota // a new campaign was stored
	Resume                // the same campaign exists, launch unfinished: resume
	Done                  // the same campaign was launched completely already
)

// createScript stores a new campaign (its counters start absent, read
// as 0).
var createScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], 'fingerprint')
if not fp then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'fingerprint', ARGV[2], 'spec', ARGV[3], 'lane', ARGV[4],
    'state', 'launching', 'created', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  return 0
end
if fp ~= ARGV[2] then return -1 end
if redis.call('HGET', KEYS[1], 'state') == 'launching' then return 1 end
return 2
`)

// Create stores a campaign once. fingerprint identifies its content (the
// campaign file and recipient list): relaunching the same id with the same
// content resumes (see Checkpoints); different content under a used id is
// an error.
func (s *Store) Create(ctx context.Context, id, lane, fingerprint string, spec []byte) (Created, error) {
	res, err := createScript.Run(ctx, s.rdb, []string{s.hash(id), s.index()},
		id, fingerprint, spec, lane, time.Now().UnixMilli()).Int()
	if err != nil {
		return 0, fmt.Errorf("store campaign %s: %w", id, err)
	}
	if res < 0 {
		return 0, fmt.Errorf("campaign id %q was already launched with different content (campaign file or recipients changed); use a new id", id)
	}
	return Created(res), nil
}

// LoadLaunchScripts loads the scripts a launch runs (Create,
// MarkLaunched) into Redis, every master of a cluster: a launcher loads
// them while it validates its list, so its first writes pay no NOSCRIPT
// round trip on a fresh or restarted Redis.
func (s *Store) LoadLaunchScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{createScript, markLaunched} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load launch scripts: %w", err)
		}
	}
	return nil
}

// Checkpoints returns, per shard, the last recipients-file line a launch
// enqueued into it (0: none): a resumed launch skips a row whose line is
// at or before its shard's checkpoint.
func (s *Store) Checkpoints(ctx context.Context, id string) ([keyspace.Shards]int, error) {
	var out [keyspace.Shards]int
	pipe := s.rdb.Pipeline()
	t := s.Tally(id)
	cmds := make([]*redis.StringCmd, keyspace.Shards)
	for n := range cmds {
		cmds[n] = pipe.HGet(ctx, t.In(n).Counters, checkpoint)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return out, fmt.Errorf("checkpoints of %s: %w", id, err)
	}
	for n, c := range cmds {
		out[n], _ = strconv.Atoi(c.Val())
	}
	return out, nil
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

// StateAndSpec returns State and Spec in one round trip: what an engine
// reads of a campaign it meets for the first time. The spec is nil when
// the campaign has none (ErrNotFound only when it has no state).
func (s *Store) StateAndSpec(ctx context.Context, id string) (string, []byte, error) {
	v, err := s.rdb.HMGet(ctx, s.hash(id), "state", "spec").Result()
	if err != nil {
		return "", nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	st, ok := v[0].(string)
	if !ok {
		return "", nil, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	var spec []byte
	if raw, ok := v[1].(string); ok {
		spec = []byte(raw)
	}
	return st, spec, nil
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

// statusFields are the campaign hash's fields Status reads.
var statusFields = []string{"id", "state", "send_at", "pause_reason"}

// counterFields are the fields of each shard's counters Status sums:
// outcome.Counters, then the complaints counter.
var counterFields = append(append([]string{}, outcome.Counters...), Complaints)

// Status reads one campaign's progress: its hash and its shards' counters
// in one pipelined round trip.
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	list, err := s.statuses(ctx, []string{id})
	if err != nil {
		return Status{}, err
	}
	if len(list) == 0 {
		return Status{}, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// statusCmds are one campaign's replies in a status pipeline.
type statusCmds struct {
	hash   *redis.SliceCmd
	shards []*redis.SliceCmd
}

func (s *Store) queueStatus(ctx context.Context, pipe redis.Pipeliner, id string) statusCmds {
	c := statusCmds{hash: pipe.HMGet(ctx, s.hash(id), statusFields...)}
	t := s.Tally(id)
	for n := 0; n < keyspace.Shards; n++ {
		c.shards = append(c.shards, pipe.HMGet(ctx, t.In(n).Counters, counterFields...))
	}
	return c
}

// statuses reads the campaigns' statuses in one pipeline, leaving out
// those that do not exist.
func (s *Store) statuses(ctx context.Context, ids []string) ([]Status, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]statusCmds, len(ids))
	for i, id := range ids {
		cmds[i] = s.queueStatus(ctx, pipe, id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("campaign status: %w", err)
	}
	out := make([]Status, 0, len(ids))
	for i, id := range ids {
		if st, ok := parseStatus(id, cmds[i]); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

func parseStatus(id string, cmds statusCmds) (Status, bool) {
	vals := cmds.hash.Val()
	if len(vals) != len(statusFields) || vals[0] == nil {
		return Status{}, false
	}
	sums := make([]int64, len(counterFields))
	for _, c := range cmds.shards {
		for i, v := range c.Val() {
			str, _ := v.(string)
			x, _ := strconv.ParseInt(str, 10, 64)
			sums[i] += x
		}
	}
	var c outcome.Counts
	for i, name := range outcome.Counters {
		c.Set(name, sums[i])
	}
	st := Status{ID: id, Total: c.Total, Queued: c.Queued, Delivered: c.Delivered, Deferred: c.Deferred,
		Bounced: c.Bounced, Suppressed: c.Suppressed, Failed: c.Failed, Cancelled: c.Cancelled}
	st.State, _ = vals[1].(string)
	st.Complaints = sums[len(outcome.Counters)]
	st.PauseReason, _ = vals[3].(string)
	sendAt, _ := vals[2].(string)
	switch at, _ := strconv.ParseInt(sendAt, 10, 64); {
	case st.State == StateSending && st.Queued == 0:
		st.State = StateFinished
	case st.State == StateSending && at > time.Now().UnixMilli():
		st.State = StateScheduled
	}
	return st, true
}

// List returns every campaign's status, oldest first, in one pipeline.
func (s *Store) List(ctx context.Context) ([]Status, error) {
	ids, err := s.IDs(ctx)
	if err != nil {
		return nil, err
	}
	return s.statuses(ctx, ids) // one removed between ZRANGE and the read is left out
}

// IDs returns the id of every campaign the store keeps, oldest first.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.index(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	return ids, nil
}

// Statuses reads the statuses of the given campaigns in one pipeline,
// in their order, leaving out those that do not exist.
func (s *Store) Statuses(ctx context.Context, ids ...string) ([]Status, error) {
	return s.statuses(ctx, ids)
}

// Record returns the stored record of one recipient.
func (s *Store) Record(ctx context.Context, id, addr string) (streams.Record, error) {
	rec, err := streams.ReadRecord(ctx, s.rdb, s.Tally(id), strings.ToLower(addr))
	if err != nil {
		return streams.Record{}, fmt.Errorf("campaign %s: %w", id, err)
	}
	return rec, nil
}
