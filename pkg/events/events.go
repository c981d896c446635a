// Package events is sluice's event log: every state change of a recipient
// or a campaign (queued, delivered, deferred, bounced, suppressed, failed,
// expired, cancelled, complained, unsubscribed, paused, resumed) as one
// entry of the Redis stream {prefix}:events. The stream id is the event's
// stable id. Changes made by a Lua script (enqueue, settle, amend) append
// their event in the same script (pkg/streams), so an event is never lost
// nor invented; the rest append after the change (Append). The stream is
// trimmed by age (Trim); consumers read it with XREAD (Read, Tail).
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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

// Event is one state change. ID is the stream entry id (not part of the
// stored payload): unique, increasing, and the same for every reader.
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
	b, _ := json.Marshal(e) // strings, ints and a time cannot fail
	return string(b)
}

// Decode parses a stored payload under its stream id.
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
// Field, or several, as a JSON array, in field BatchField.
func ShardKey(ks keyspace.Space, shard int) string { return ks.In(shard, "events") }

// BatchField is the field of an entry holding a JSON array of events
// (a settle of a whole run appends them as one entry).
const BatchField = "es"

// Log reads and appends to a deployment's events stream.
type Log struct {
	rdb redis.UniversalClient
	key string
}

// New returns the events log of space ks.
func New(rdb redis.UniversalClient, ks keyspace.Space) *Log {
	return &Log{rdb: rdb, key: Key(ks)}
}

// Append adds an event for a change that was not made by a script (a
// pause, an unsubscribe): called after the change succeeded. It returns
// the event's id.
func (l *Log) Append(ctx context.Context, e Event) (string, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	id, err := l.rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.key, Values: []string{Field, e.Encode()}}).Result()
	if err != nil {
		return "", fmt.Errorf("append %s event: %w", e.Type, err)
	}
	return id, nil
}

// Trim drops events older than retention (approximately: whole
// stream nodes at a time) and returns how many went.
func (l *Log) Trim(ctx context.Context, now time.Time, retention time.Duration) (int64, error) {
	n, err := l.rdb.XTrimMinIDApprox(ctx, l.key, MinID(now.Add(-retention)), 0).Result()
	if err != nil {
		return 0, fmt.Errorf("trim events: %w", err)
	}
	return n, nil
}

// MinID is the smallest stream id at or after t.
func MinID(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) + "-0" }

// Read returns up to count events after id ("0" for the oldest kept, "$"
// only with Tail), waiting up to block for the first one (block < 0:
// don't wait).
func (l *Log) Read(ctx context.Context, after string, count int, block time.Duration) ([]Event, error) {
	res, err := l.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{l.key, after}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events after %s: %w", after, err)
	}
	var out []Event
	for _, s := range res {
		for _, m := range s.Messages {
			raw, _ := m.Values[Field].(string)
			e, err := Decode(m.ID, raw)
			if err != nil {
				return out, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Last returns the id of the newest event ever added ("0-0" for none),
// so a reader that starts now begins after it.
func (l *Log) Last(ctx context.Context) (string, error) {
	res, err := l.rdb.XRevRangeN(ctx, l.key, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("last event: %w", err)
	}
	if len(res) == 0 {
		return "0-0", nil
	}
	return res[0].ID, nil
}

// Behind counts the events after id, up to limit (the lag of a reader
// whose cursor is id).
func (l *Log) Behind(ctx context.Context, id string, limit int64) (int64, error) {
	res, err := l.rdb.XRangeN(ctx, l.key, "("+id, "+", limit).Result()
	if err != nil {
		return 0, fmt.Errorf("events after %s: %w", id, err)
	}
	return int64(len(res)), nil
}

// Since turns a --since value into the id to read after: an event id
// (as printed), or a duration back from now.
func Since(s string, now time.Time) (string, error) {
	if s == "" {
		return "$", nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return "", fmt.Errorf("--since %s: must not be negative", s)
		}
		return MinID(now.Add(-d)), nil
	}
	ms, seq, ok := strings.Cut(s, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err == nil {
		if !ok {
			return s + "-0", nil
		}
		if _, err := strconv.ParseUint(seq, 10, 64); err == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("--since %q: want a duration (30m, 24h) or an event id (1700000000000-0)", s)
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
