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

// CampaignLines reports the lines of campaign id with their depths, a
// destination's parts in every shard as one (its Shard is -1; NotBefore
// is the earliest of its parts').
func (q *Queue) CampaignLines(ctx context.Context, id string) ([]LineDepth, error) {
	var lines []Line
	for _, lane := range Lanes {
		err := q.scanLines(ctx, escapeGlob(string(lane)+"|"+id+"|")+"*", func(l Line) error { lines = append(lines, l); return nil })
		if err != nil {
			return nil, fmt.Errorf("lines of %s: %w", id, err)
		}
	}
	// One line per destination: its shards' parts summed (Shard -1).
	sums := map[Line]*LineDepth{}
	var out []LineDepth
	var order []Line
	for _, d := range q.measure(ctx, lines) {
		if d.Waiting == 0 && d.Held == 0 {
			continue
		}
		l := d.Line
		l.Shard = -1
		sum := sums[l]
		if sum == nil {
			sum = &LineDepth{Line: l}
			sums[l] = sum
			order = append(order, l)
		}
		sum.Waiting += d.Waiting
		sum.Held += d.Held
		if !d.NotBefore.IsZero() && (sum.NotBefore.IsZero() || d.NotBefore.Before(sum.NotBefore)) {
			sum.NotBefore = d.NotBefore
		}
	}
	for _, l := range order {
		out = append(out, *sums[l])
	}
	return out, nil
}

// measure reads the depth of each line in two pipelined round trips; a
// line gone meanwhile reads as empty.
func (q *Queue) measure(ctx context.Context, lines []Line) []LineDepth {
	if len(lines) == 0 {
		return nil
	}
	keys := make([]string, len(lines))
	for i, l := range lines {
		keys[i] = q.LineStream(l)
	}
	depths := q.streamDepths(ctx, keys)
	pipe := q.rdb.Pipeline()
	score := make([]*redis.FloatCmd, len(lines))
	for i, l := range lines {
		score[i] = pipe.ZScore(ctx, q.ready(l.Shard), l.Name())
	}
	_, _ = pipe.Exec(ctx)
	out := make([]LineDepth, len(lines))
	now := time.Now()
	for i, l := range lines {
		d := LineDepth{Line: l, Held: depths[i].Held, Waiting: depths[i].Unread}
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
