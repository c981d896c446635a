package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// pollEvery is how often a blocking read on a Redis Cluster looks again:
// one XREAD cannot wait on keys of several slots there.
const pollEvery = 500 * time.Millisecond

// item is one event read, with its place.
type item struct {
	Event
	at   eventID
	last bool // the last event of its entry
}

// Read returns up to count events after the place after names (a Cursor's
// text, an event ID, or "0" for the oldest kept), waiting up to block for
// the first one (block < 0: don't wait). A reader that goes on reading
// keeps the Cursor ReadFrom returns instead.
func (l *Log) Read(ctx context.Context, after string, count int, block time.Duration) ([]Event, error) {
	c, err := ParseCursor(after)
	if err != nil {
		return nil, err
	}
	evs, _, err := l.ReadFrom(ctx, c, count, block)
	return evs, err
}

// ReadFrom returns up to count events after c, merged from every source
// in stream id order (the events of one recipient, in one shard, in
// exactly their order), and the cursor after them. It waits up to block
// for the first one (block < 0: don't wait).
func (l *Log) ReadFrom(ctx context.Context, c Cursor, count int, block time.Duration) ([]Event, Cursor, error) {
	end := time.Now().Add(block)
	for {
		wait := time.Duration(-1)
		if !l.perSource && block >= 0 {
			wait = block
		}
		got, err := l.fetch(ctx, c, count, wait)
		if err != nil {
			return nil, c, err
		}
		evs, next := merge(c, got, count)
		left := time.Until(end)
		if len(evs) > 0 || block < 0 || !l.perSource || left <= 0 {
			return evs, next, nil
		}
		c = next
		t := time.NewTimer(min(pollEvery, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, c, ctx.Err()
		case <-t.C:
		}
	}
}

// fetch reads up to count entries of every source after c: on one Redis
// one XREAD of every stream (waiting up to block when block >= 0), on a
// cluster one XREAD per stream, pipelined.
func (l *Log) fetch(ctx context.Context, c Cursor, count int, block time.Duration) ([][]redis.XMessage, error) {
	out := make([][]redis.XMessage, sources)
	if !l.perSource {
		streams := make([]string, 0, 2*sources)
		streams = append(streams, l.keys[:]...)
		for _, p := range c.pos {
			streams = append(streams, p.after().String())
		}
		res, err := l.rdb.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: int64(count), Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		for _, s := range res {
			out[slices.Index(l.keys[:], s.Stream)] = s.Messages
		}
		return out, nil
	}
	cmds := make([]*redis.XStreamSliceCmd, sources)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for src, k := range l.keys {
			cmds[src] = p.XRead(ctx, &redis.XReadArgs{Streams: []string{k, c.pos[src].after().String()}, Count: int64(count), Block: -1})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read events: %w", err)
	}
	for src, cmd := range cmds {
		if res, err := cmd.Result(); err == nil && len(res) == 1 {
			out[src] = res[0].Messages
		}
	}
	return out, nil
}

// merge orders what fetch read into up to count events after c and the
// cursor after them. A source that gave all count entries asked for may
// hold more: no event later than its last entry is taken from another
// source, so the merged order holds across reads.
func merge(c Cursor, got [][]redis.XMessage, count int) ([]Event, Cursor) {
	var horizon *streamID
	var items []item
	for src, msgs := range got {
		if len(msgs) == count && count > 0 {
			if last, ok := parseStreamID(msgs[len(msgs)-1].ID); ok && (horizon == nil || last.cmp(*horizon) < 0) {
				horizon = &last
			}
		}
		for _, m := range msgs {
			id, ok := parseStreamID(m.ID)
			if !ok {
				continue
			}
			evs := entryEvents(src, id, m)
			if p := c.pos[src]; p.part > 0 && id == p.entry {
				if p.part >= len(evs) {
					c.pos[src] = pos{entry: id} // nothing left of it
				}
				evs = evs[min(p.part, len(evs)):]
			}
			items = append(items, evs...)
		}
	}
	slices.SortFunc(items, func(a, b item) int { return a.at.order(b.at) })
	var out []Event
	for _, it := range items {
		if len(out) == count || (horizon != nil && it.at.entry.cmp(*horizon) > 0) {
			break
		}
		out = append(out, it.Event)
		p := pos{entry: it.at.entry}
		if !it.last {
			p.part = it.at.index + 1
		}
		c.pos[it.at.src] = p
	}
	return out, c
}

// entryEvents decodes one stream entry: one event in Field, several in
// BatchField or RunField. An entry that does not decode becomes one event
// of its id with only the error as Reason, so a reader never stops on it.
func entryEvents(src int, id streamID, m redis.XMessage) []item {
	if raw, ok := m.Values[BatchField].(string); ok {
		var list []json.RawMessage
		if err := json.Unmarshal([]byte(raw), &list); err == nil {
			out := make([]item, len(list))
			for i, r := range list {
				at := eventID{src: src, entry: id, index: i}
				out[i] = item{Event: decodeAt(at, string(r)), at: at, last: i == len(list)-1}
			}
			return out
		}
	}
	if raw, ok := m.Values[RunField].(string); ok {
		run, err := DecodeRun(raw)
		if err != nil || len(run.Jobs) == 0 {
			at := eventID{src: src, entry: id, index: -1}
			return []item{{Event: Event{ID: at.String(), Reason: fmt.Sprintf("event %s: %v (%d jobs)", at, err, len(run.Jobs))}, at: at, last: true}}
		}
		evs := run.Events()
		out := make([]item, len(evs))
		for i, e := range evs {
			at := eventID{src: src, entry: id, index: i}
			e.ID = at.String()
			out[i] = item{Event: e, at: at, last: i == len(evs)-1}
		}
		return out
	}
	raw, _ := m.Values[Field].(string)
	at := eventID{src: src, entry: id, index: -1}
	return []item{{Event: decodeAt(at, raw), at: at, last: true}}
}

func decodeAt(at eventID, raw string) Event {
	e, err := Decode(at.String(), raw)
	if err != nil {
		return Event{ID: at.String(), Reason: err.Error()}
	}
	return e
}

// Last returns the cursor after the newest event of every source, so a
// reader that starts now begins after them.
func (l *Log) Last(ctx context.Context) (Cursor, error) {
	var c Cursor
	cmds := make([]*redis.XMessageSliceCmd, sources)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for src, k := range l.keys {
			cmds[src] = p.XRevRangeN(ctx, k, "+", "-", 1)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("last event: %w", err)
	}
	for src, cmd := range cmds {
		if res := cmd.Val(); len(res) == 1 {
			c.pos[src].entry, _ = parseStreamID(res[0].ID)
		}
	}
	return c, nil
}

// Behind counts the events after the place after names (as Read takes
// it), up to limit: the lag of a reader there.
func (l *Log) Behind(ctx context.Context, after string, limit int64) (int64, error) {
	c, err := ParseCursor(after)
	if err != nil {
		return 0, err
	}
	cmds := make([]*redis.XMessageSliceCmd, sources)
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for src, k := range l.keys {
			cmds[src] = p.XRangeN(ctx, k, "("+c.pos[src].after().String(), "+", limit)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("events after %s: %w", after, err)
	}
	var n int64
	for src, cmd := range cmds {
		for _, m := range cmd.Val() {
			id, _ := parseStreamID(m.ID)
			k := int64(1)
			if raw, ok := m.Values[BatchField].(string); ok {
				var list []json.RawMessage
				if json.Unmarshal([]byte(raw), &list) == nil {
					k = int64(len(list))
				}
			}
			if raw, ok := m.Values[RunField].(string); ok {
				if run, err := DecodeRun(raw); err == nil && len(run.Jobs) > 0 {
					k = int64(len(run.Jobs) / 2)
				}
			}
			if p := c.pos[src]; p.part > 0 && id == p.entry {
				k = max(k-int64(p.part), 0)
			}
			n += k
		}
	}
	return min(n, limit), nil
}
