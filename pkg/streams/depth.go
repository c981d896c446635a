package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// LineDepth is what waits in one line.
type LineDepth struct {
	Line      Line
	Waiting   int64     // jobs not yet taken
	Held      int64     // jobs taken by an engine and not settled yet
	NotBefore time.Time // when the line may be read again; zero when due or idle
}

// CampaignLines reports the lines of campaign id with their depths.
func (q *Queue) CampaignLines(ctx context.Context, id string) ([]LineDepth, error) {
	var lines []Line
	for _, lane := range Lanes {
		iter := q.rdb.SScan(ctx, q.lines(), 0, escapeGlob(string(lane)+"|"+id+"|")+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if l, err := ParseLine(iter.Val()); err == nil {
				lines = append(lines, l)
			}
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("lines of %s: %w", id, err)
		}
	}
	ds := q.measure(ctx, lines)
	out := ds[:0]
	for _, d := range ds {
		if d.Waiting > 0 || d.Held > 0 {
			out = append(out, d)
		}
	}
	return out, nil
}

// measure reads the depth of each line in one pipelined round trip; a line
// gone meanwhile reads as empty.
func (q *Queue) measure(ctx context.Context, lines []Line) []LineDepth {
	if len(lines) == 0 {
		return nil
	}
	pipe := q.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(lines))
	pend := make([]*redis.XPendingCmd, len(lines))
	score := make([]*redis.FloatCmd, len(lines))
	for i, l := range lines {
		lens[i] = pipe.XLen(ctx, q.LineStream(l))
		pend[i] = pipe.XPending(ctx, q.LineStream(l), Group)
		score[i] = pipe.ZScore(ctx, q.ready(), l.Name())
	}
	_, _ = pipe.Exec(ctx)
	out := make([]LineDepth, len(lines))
	now := time.Now()
	for i, l := range lines {
		d := LineDepth{Line: l}
		if p, err := pend[i].Result(); err == nil {
			d.Held = p.Count
		}
		d.Waiting = max(lens[i].Val()-d.Held, 0)
		if sc, err := score[i].Result(); err == nil {
			if t := time.UnixMilli(int64(sc)); t.After(now) {
				d.NotBefore = t
			}
		}
		out[i] = d
	}
	return out
}

// KeyDepth is what waits for one throttle key in one lane, over all
// campaigns' lines.
type KeyDepth struct {
	Lane      Lane
	Key       string
	Waiting   int64 // jobs not yet taken
	Scheduled int64 // of which in lines that may not be read before a later time
}

// Depths sums the lines by lane and throttle key (for metrics): one scan
// of the lines set and one pipelined round trip.
func (q *Queue) Depths(ctx context.Context) ([]KeyDepth, error) {
	var lines []Line
	if err := q.Lines(ctx, func(l Line) error { lines = append(lines, l); return nil }); err != nil {
		return nil, err
	}
	type lk struct {
		lane Lane
		key  string
	}
	sums := map[lk]*KeyDepth{}
	var order []lk
	for _, ld := range q.measure(ctx, lines) {
		k := lk{ld.Line.Lane, ld.Line.Key}
		d := sums[k]
		if d == nil {
			d = &KeyDepth{Lane: k.lane, Key: k.key}
			sums[k] = d
			order = append(order, k)
		}
		d.Waiting += ld.Waiting
		if !ld.NotBefore.IsZero() {
			d.Scheduled += ld.Waiting
		}
	}
	out := make([]KeyDepth, len(order))
	for i, k := range order {
		out[i] = *sums[k]
	}
	return out, nil
}
