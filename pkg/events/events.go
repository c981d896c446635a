// Package events is sluice's event log: every state change of a recipient
// or a campaign (queued, delivered, deferred, bounced, suppressed, failed,
// expired, cancelled, complained, unsubscribed, paused, resumed).
//
// The log is keyspace.Shards Redis streams, one per shard (ShardKey,
// {prefix.N.S}:events): an event about a recipient is in its recipient's
// shard (keyspace.ShardOf of the address), a campaign's own (paused,
// resumed) in its campaign id's. Changes made by a Lua script (enqueue,
// settle, amend) append their events in the same script to the shard's
// stream they change (pkg/streams), so an event is never lost nor
// invented; the rest append after the change (Append). A stream entry
// holds one event in field Field, several, a JSON array, in BatchField,
// or a run of events of one type, time and campaign in RunField (a
// launch's queued events, appended by the launch's transaction).
//
// Readers see one stream: Read/ReadFrom merge the shards in stream id
// (time) order — exact for the events of one recipient, which share a
// shard, and as exact as the Redis nodes' clocks across shards. An
// event's ID is "S/MS-SEQ", S its shard and MS-SEQ its stream entry id,
// or "S/MS-SEQ/I" for the I-th event (from 0) of a batch entry; events of
// the unsharded stream of earlier versions ({prefix}:events, still read
// until trimmed) keep their plain "MS-SEQ". IDs are unique and the same
// for every reader, so receivers de-duplicate by them, and `--since ID`
// goes on after one. A reader that must not miss an event keeps a Cursor
// (one place per stream) rather than the last ID. The streams are trimmed
// by age (Trim).
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/jsonenc"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Type is what happened.
type Type string

// The event types. Recipient events carry a job id and a recipient;
// Paused and Resumed are a campaign's.
const (
	Queued       Type = "queued"
	Delivered    Type = "delivered"
	Deferred     Type = "deferred"
	Bounced      Type = "bounced"
	Suppressed   Type = "suppressed"
	Failed       Type = "failed"
	Expired      Type = "expired"
	Cancelled    Type = "cancelled"
	Complained   Type = "complained"
	Unsubscribed Type = "unsubscribed"
	Paused       Type = "paused"
	Resumed      Type = "resumed"
)

// Types lists every type, in the order above.
var Types = []Type{Queued, Delivered, Deferred, Bounced, Suppressed, Failed, Expired, Cancelled,
	Complained, Unsubscribed, Paused, Resumed}

// ParseType checks a type name.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return "", fmt.Errorf("unknown event type %q (want one of %s)", s, strings.Join(names, ", "))
}

// DefaultRetention is how long events are kept when events.retention is
// not set.
const DefaultRetention = 7 * 24 * time.Hour

// ReplyLimit is the longest reply text an event carries.
const ReplyLimit = 400

// Field is the stream entry's one field, holding the JSON payload.
const Field = "e"

// Event is one state change. ID is where it is in the log (see the
// package comment; not part of the stored payload): unique, and the same
// for every reader.
type Event struct {
	ID        string    `json:"id,omitempty"`
	Type      Type      `json:"type"`
	Time      time.Time `json:"time"`
	Campaign  string    `json:"campaign,omitempty"`
	Job       string    `json:"job,omitempty"`
	Recipient string    `json:"recipient,omitempty"`
	Code      int       `json:"code,omitempty"`
	Enhanced  string    `json:"enhanced,omitempty"`
	Reply     string    `json:"reply,omitempty"`
	MX        string    `json:"mx,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// Encode returns the stored payload (without the id).
func (e Event) Encode() string {
	e.ID = ""
	e.Time = e.Time.UTC().Truncate(time.Millisecond)
	if b, ok := e.appendJSON(make([]byte, 0, 256)); ok {
		return string(b)
	}
	b, _ := json.Marshal(e) // strings, ints and a time cannot fail
	return string(b)
}

// appendJSON appends json.Marshal's encoding of e (without the id) for
// Encode, which runs for every settled message; ok is false for a time
// MarshalJSON refuses.
func (e Event) appendJSON(b []byte) ([]byte, bool) {
	b = jsonenc.AppendField(append(b, '{'), "type", string(e.Type), true)
	b = append(b, `,"time":`...)
	b, ok := jsonenc.AppendTime(b, e.Time)
	if !ok {
		return b, false
	}
	b = jsonenc.AppendNonEmpty(b, "campaign", e.Campaign, "job", e.Job, "recipient", e.Recipient)
	if e.Code != 0 {
		b = jsonenc.AppendInt(b, "code", int64(e.Code), false)
	}
	b = jsonenc.AppendNonEmpty(b, "enhanced", e.Enhanced, "reply", e.Reply, "mx", e.MX)
	if e.Attempt != 0 {
		b = jsonenc.AppendInt(b, "attempt", int64(e.Attempt), false)
	}
	b = jsonenc.AppendNonEmpty(b, "reason", e.Reason)
	return append(b, '}'), true
}

// Decode parses a stored payload under its event ID.
func Decode(id, payload string) (Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return e, fmt.Errorf("event %s: %w", id, err)
	}
	e.ID = id
	return e, nil
}

// Key is the events stream of a deployment. pkg/events owns it;
// pkg/streams' scripts append to it (their keys are passed in).
func Key(ks keyspace.Space) string { return ks.Key("events") }

// ShardKey is shard's events stream (see keyspace: the scripts that
// change a shard's jobs append there). An entry holds one event in field
// Field, several, as a JSON array, in field BatchField, or a run of them
// in RunField.
func ShardKey(ks keyspace.Space, shard int) string { return ks.In(shard, "events") }

// BatchField is the field of an entry holding a JSON array of events
// (a settle of a whole run appends them as one entry).
const BatchField = "es"

// Log reads and appends to a deployment's event streams.
type Log struct {
	rdb  redis.UniversalClient
	keys [sources]string // the shards' streams, then the unsharded one
	// perSource: reads go stream by stream (a Redis Cluster refuses one
	// command on keys of several slots).
	perSource bool
}

// New returns the events log of space ks.
func New(rdb redis.UniversalClient, ks keyspace.Space) *Log {
	l := &Log{rdb: rdb}
	for n := range keyspace.Shards {
		l.keys[n] = ShardKey(ks, n)
	}
	l.keys[legacy] = Key(ks)
	_, l.perSource = rdb.(*redis.ClusterClient)
	return l
}

// ShardFor is the shard of e's stream: its recipient's, else its
// campaign's, else its job's.
func ShardFor(e Event) int {
	switch {
	case e.Recipient != "":
		return keyspace.ShardOf(e.Recipient)
	case e.Campaign != "":
		return keyspace.ShardOf(e.Campaign)
	}
	return keyspace.ShardOf(e.Job)
}

// Append adds an event for a change that was not made by a script (a
// pause, an unsubscribe) to its shard's stream (ShardFor): called after
// the change succeeded. It returns the event's ID.
func (l *Log) Append(ctx context.Context, e Event) (string, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	src := ShardFor(e)
	id, err := l.rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.keys[src], Values: []string{Field, e.Encode()}}).Result()
	if err != nil {
		return "", fmt.Errorf("append %s event: %w", e.Type, err)
	}
	sid, _ := parseStreamID(id)
	return eventID{src: src, entry: sid, index: -1}.String(), nil
}

// Trim drops events older than retention from every stream
// (approximately: whole stream nodes at a time) and returns how many went.
func (l *Log) Trim(ctx context.Context, now time.Time, retention time.Duration) (int64, error) {
	cmds := make([]*redis.IntCmd, sources)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for src, k := range l.keys {
			cmds[src] = p.XTrimMinIDApprox(ctx, k, MinID(now.Add(-retention)), 0)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("trim events: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// KeepTrimmed trims the stream to retention every minute until ctx ends.
// Every engine may run it; trimming twice is harmless.
func (l *Log) KeepTrimmed(ctx context.Context, retention time.Duration, log interface {
	Warn(msg string, args ...any)
}) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if _, err := l.Trim(ctx, time.Now(), retention); err != nil && ctx.Err() == nil {
			log.Warn("events: trim", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
