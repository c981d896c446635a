package verp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// A transactional message keeps the Message-ID its client gave it and
// may go out without a VERP return path (the client's own envelope
// sender), so a report about it can name it only by the Message-ID it
// quotes. The Message-ID index maps those to their jobs:
// {prefix.N.S}:mid:DAY, a hash per shard (ShardOf the Message-ID) and
// UTC day of enqueue, field the Message-ID, value one "JOB RCPT" line per
// job, kept as long as the day's transactional records (IndexRetention
// after the day ends). Campaign messages need no index: their
// Message-IDs encode the job (MessageID).

// IndexRetention is how long after its day an index entry is kept: the
// transactional records' retention (streams.RecordRetention).
const IndexRetention = 30 * 24 * time.Hour

const dayFormat = "20060102"

// Ref is one job a Message-ID was sent as.
type Ref struct {
	ID string // the job id
	To string // its recipient
}

func indexKey(ks keyspace.Space, mid string, day time.Time) string {
	return ks.In(keyspace.ShardOf(mid), "mid", day.UTC().Format(dayFormat))
}

// NormalizeMessageID is a Message-ID as the index keys it: without angle
// brackets and surrounding space, lower-cased.
func NormalizeMessageID(mid string) string {
	return strings.ToLower(strings.Trim(mid, "<> \t"))
}

// HeaderMessageID reads the Message-ID field of msg's header ("" when it
// has none or the header cannot be read).
func HeaderMessageID(msg []byte) string {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	return NormalizeMessageID(h.Get("Message-Id"))
}

// Entry is one Message-ID's index entry: HSET Key Field Value, the key
// expiring at ExpireAt. Key is in shard Shard: a transactional enqueue
// whose jobs are in that shard writes it in its own atomic step
// (streams.AddMessages, through the key it is given), others Write it.
type Entry struct {
	Key, Field, Value string
	ExpireAt          time.Time
	Shard             int
}

// Entries are the index entries of jobs under the Message-IDs they were
// sent as (by Message-ID), enqueued at now.
func Entries(ks keyspace.Space, byMID map[string][]Ref, now time.Time) []Entry {
	day := now.UTC().Truncate(24 * time.Hour)
	expire := day.Add(24 * time.Hour).Add(IndexRetention)
	var es []Entry
	for mid, refs := range byMID {
		mid = NormalizeMessageID(mid)
		if mid == "" {
			continue
		}
		var b strings.Builder
		for _, r := range refs {
			fmt.Fprintf(&b, "%s %s\n", r.ID, strings.ToLower(r.To))
		}
		es = append(es, Entry{Key: indexKey(ks, mid, day), Field: mid, Value: b.String(),
			ExpireAt: expire, Shard: keyspace.ShardOf(mid)})
	}
	return es
}

// IDShard is the shard of a Message-ID's index entries (-1 for none).
func IDShard(mid string) int {
	if mid = NormalizeMessageID(mid); mid != "" {
		return keyspace.ShardOf(mid)
	}
	return -1
}

// Write writes index entries, in one round trip.
func Write(ctx context.Context, rdb redis.UniversalClient, es []Entry) error {
	if len(es) == 0 {
		return nil
	}
	pipe := rdb.Pipeline()
	for _, e := range es {
		pipe.HSet(ctx, e.Key, e.Field, e.Value)
		pipe.ExpireAt(ctx, e.Key, e.ExpireAt)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("verp: index Message-IDs: %w", err)
	}
	return nil
}

// Remember indexes jobs under the Message-IDs they were sent as (by
// Message-ID), enqueued at now, in one round trip.
func Remember(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, byMID map[string][]Ref, now time.Time) error {
	return Write(ctx, rdb, Entries(ks, byMID, now))
}

// Find returns the jobs sent as Message-ID mid within the retention
// before now (newest day first), in one round trip; none is no error.
func Find(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, mid string, now time.Time) ([]Ref, error) {
	mid = NormalizeMessageID(mid)
	if mid == "" {
		return nil, nil
	}
	day := now.UTC().Truncate(24 * time.Hour)
	days := int(IndexRetention/(24*time.Hour)) + 1
	pipe := rdb.Pipeline()
	cmds := make([]*redis.StringCmd, days)
	for i := range cmds {
		cmds[i] = pipe.HGet(ctx, indexKey(ks, mid, day.AddDate(0, 0, -i)), mid)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("verp: find Message-ID %s: %w", mid, err)
	}
	for _, c := range cmds {
		v, err := c.Result()
		if err != nil {
			continue
		}
		var refs []Ref
		for line := range strings.Lines(v) {
			id, to, _ := strings.Cut(strings.TrimSpace(line), " ")
			if id != "" {
				refs = append(refs, Ref{ID: id, To: to})
			}
		}
		return refs, nil
	}
	return nil, nil
}
