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

// measure reads the depth of each line, in jobs, in a few pipelined round
// trips; a line gone meanwhile reads as empty.
func (q *Queue) measure(ctx context.Context, lines []Line) []LineDepth {
	if len(lines) == 0 {
		return nil
	}
	keys := make([]string, len(lines))
	for i, l := range lines {
		keys[i] = q.LineStream(l)
	}
	depths := q.streamDepths(ctx, keys)
	q.packDepths(ctx, lines, keys, depths)
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

// packDepthScript counts the jobs of line stream KEYS[1]'s entries held
// by group ARGV[1] and of those not read yet, where entries may be packs:
// up to ARGV[2] entries of each kind are read, and the jobs of any more
// are reckoned at the read ones' average. Reply: {held jobs, unread jobs}.
var packDepthScript = redis.NewScript(luaLetGo + luaEntryJobs + `
local held, unread, last = streamDepth(KEYS[1], ARGV[1])
if not last then return {held, unread} end
local most = tonumber(ARGV[2])
local function jobsOf(entries, total)
  local n, seen = 0, 0
  for _, e in ipairs(entries) do
    local f, raw = entryJobs(e[2])
    if raw then n = n + jobsIn(f, raw) end
    seen = seen + 1
  end
  if seen == 0 or seen >= total then return n end
  return math.floor(n * total / seen + 0.5)
end
local out = {0, 0}
if unread > 0 then
  out[2] = jobsOf(redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', most), unread)
end
if held > 0 then
  local es = {}
  for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', most)) do
    local e = redis.call('XRANGE', KEYS[1], p[1], p[1])
    if e[1] then es[#es + 1] = e[1] end
  end
  out[1] = jobsOf(es, held)
end
return out
`)

// packDepthEntries bounds the entries packDepthScript reads of each kind
// in a line.
const packDepthEntries = 1000

// packDepths turns the entries counted in depths into jobs for the
// marketing lines (whose entries may be packs), in one pipelined round
// trip.
func (q *Queue) packDepths(ctx context.Context, lines []Line, keys []string, depths []StreamDepth) {
	var calls []scriptCall
	var at []int
	for i, l := range lines {
		if l.Lane == Marketing && depths[i].Held+depths[i].Unread > 0 {
			calls = append(calls, scriptCall{keys: []string{keys[i]}, args: []any{Group, packDepthEntries}})
			at = append(at, i)
		}
	}
	for j, c := range runAll(ctx, q.rdb, packDepthScript, calls) {
		if v, err := c.Int64Slice(); err == nil && len(v) == 2 {
			depths[at[j]] = StreamDepth{Held: v[0], Unread: v[1]}
		}
	}
}
