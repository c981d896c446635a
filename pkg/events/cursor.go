package events

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// sources is how many streams a Log reads: the Shards shard streams and,
// last, the unsharded stream {prefix}:events of earlier versions (Key),
// still read until retention has trimmed it empty.
const sources = keyspace.Shards + 1

// legacy is the source index of the unsharded stream.
const legacy = keyspace.Shards

// streamID is a parsed stream entry id "MS-SEQ".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	return streamID{a, b}, ok && err1 == nil && err2 == nil
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id streamID) cmp(o streamID) int {
	if c := cmp.Compare(id.ms, o.ms); c != 0 {
		return c
	}
	return cmp.Compare(id.seq, o.seq)
}

// pred is the id just before id ("0-0" stays).
func (id streamID) pred() streamID {
	switch {
	case id.seq > 0:
		return streamID{id.ms, id.seq - 1}
	case id.ms > 0:
		return streamID{id.ms - 1, ^uint64(0)}
	}
	return id
}

// eventID is where an event sits: its source stream, its entry's id and,
// in a batch entry, its index (-1 for an entry of one event).
type eventID struct {
	src   int
	entry streamID
	index int
}

// String is the event's ID as readers see it: "S/MS-SEQ" for the one
// event of an entry of shard S, "S/MS-SEQ/I" for the I-th (from 0) of a
// batch entry, and the plain "MS-SEQ" for an event of the unsharded
// stream of earlier versions.
func (e eventID) String() string {
	if e.src == legacy {
		return e.entry.String()
	}
	s := strconv.Itoa(e.src) + "/" + e.entry.String()
	if e.index >= 0 {
		s += "/" + strconv.Itoa(e.index)
	}
	return s
}

// parseEventID reads an event ID; a plain "MS-SEQ" is a place in time
// after which every source's entries come (as the unsharded stream's
// events are last among equal ids).
func parseEventID(s string) (eventID, bool) {
	parts := strings.Split(s, "/")
	if len(parts) == 1 {
		id, ok := parseStreamID(s)
		return eventID{src: legacy, entry: id, index: -1}, ok
	}
	src, err := strconv.Atoi(parts[0])
	id, ok := parseStreamID(parts[1])
	e := eventID{src: src, entry: id, index: -1}
	if err != nil || !ok || src < 0 || src >= keyspace.Shards || len(parts) > 3 {
		return e, false
	}
	if len(parts) == 3 {
		i, err := strconv.Atoi(parts[2])
		if err != nil || i < 0 {
			return e, false
		}
		e.index = i
	}
	return e, true
}

// order is the merged stream's order: entry id (time), then source,
// then index in the entry.
func (e eventID) order(o eventID) int {
	if c := e.entry.cmp(o.entry); c != 0 {
		return c
	}
	if c := cmp.Compare(e.src, o.src); c != 0 {
		return c
	}
	return cmp.Compare(e.index, o.index)
}

// pos is a reader's place in one source: every entry up to entry is read,
// except that of entry itself only the first part events are when part >
// 0 (a batch entry read in part).
type pos struct {
	entry streamID
	part  int
}

// after is the id to read after (XREAD): entry itself, or the one before
// it when it was read in part.
func (p pos) after() streamID {
	if p.part > 0 {
		return p.entry.pred()
	}
	return p.entry
}

// Cursor is a reader's place in the merged stream: one place per source
// stream, so that an event appended to one shard with an id older than
// what another shard gave (clocks of cluster nodes differ) is still read.
// The zero Cursor is before every event. A durable reader (a webhook)
// stores Cursor.String and reads on with ParseCursor.
type Cursor struct{ pos [sources]pos }

// String is the cursor's text: each source's place "MS-SEQ" or
// "MS-SEQ/PART", comma-separated, shards in order, then the unsharded
// stream.
func (c Cursor) String() string {
	parts := make([]string, sources)
	for i, p := range c.pos {
		parts[i] = p.entry.String()
		if p.part > 0 {
			parts[i] += "/" + strconv.Itoa(p.part)
		}
	}
	return strings.Join(parts, ",")
}

// ParseCursor reads a Cursor's text, or an event ID (the cursor just
// after that event: what earlier versions stored), or "0" or "" (before
// every event).
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	if s == "" || s == "0" {
		return c, nil
	}
	if !strings.Contains(s, ",") {
		id, ok := parseEventID(s)
		if !ok {
			return c, fmt.Errorf("events: bad cursor or event id %q", s)
		}
		return after(id), nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > sources {
		return c, fmt.Errorf("events: cursor %q has %d places, want %d", s, len(parts), sources)
	}
	for i, p := range parts {
		entry, part, hasPart := strings.Cut(p, "/")
		id, ok := parseStreamID(entry)
		n, err := strconv.Atoi(part)
		if !ok || (hasPart && (err != nil || n < 1)) {
			return c, fmt.Errorf("events: bad cursor %q: place %d is %q", s, i, p)
		}
		c.pos[i] = pos{entry: id, part: n}
	}
	return c, nil
}

// after is the cursor just after the event at e in the merged order.
func after(e eventID) Cursor {
	var c Cursor
	for src := range sources {
		switch {
		case src < e.src:
			c.pos[src] = pos{entry: e.entry}
		case src > e.src:
			c.pos[src] = pos{entry: e.entry.pred()}
		case e.index >= 0:
			c.pos[src] = pos{entry: e.entry, part: e.index + 1}
		default:
			c.pos[src] = pos{entry: e.entry}
		}
	}
	return c
}

// At is the cursor before every event appended at t or later.
func At(t time.Time) Cursor {
	var c Cursor
	ms := t.UnixMilli()
	if ms <= 0 {
		return c
	}
	for src := range sources {
		c.pos[src] = pos{entry: streamID{ms: uint64(ms)}.pred()}
	}
	return c
}

// MinID is the smallest stream id at or after t.
func MinID(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) + "-0" }

// Since turns a --since value into the cursor to read from: an event id
// (as printed: read after it), a stream id or a Unix time in ms (after
// that moment), or a duration back from now.
func Since(s string, now time.Time) (Cursor, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return Cursor{}, fmt.Errorf("--since %s: must not be negative", s)
		}
		return At(now.Add(-d)), nil
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		s += "-0"
	}
	if id, ok := parseEventID(s); ok {
		return after(id), nil
	}
	return Cursor{}, fmt.Errorf("--since %q: want a duration (30m, 24h) or an event id (3/1700000000000-0, 1700000000000-0)", s)
}
