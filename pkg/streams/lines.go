package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Line is where jobs wait for one destination: a stream per (lane,
// campaign, throttle key), read through the engines' group like the lane
// streams, so holding, settling and taking over work the same. A job
// enters its line once it is routed (Route); engines read a line only when
// the throttle lets its key send, so waiting costs nothing.
//
// The ready set (a sorted set of line names, scored with the time a line
// is worth reading again) is what engines poll: a line out of send slots
// or suspended is scored at the time it may send, a line with nothing new
// is not in it at all.
type Line struct {
	Shard    int // every job of a line is of this shard
	Lane     Lane
	Campaign string // empty for transactional jobs
	Key      string // the throttle key the destination rolls up to
}

// Name is the line's member in its shard's ready and lines sets.
func (l Line) Name() string { return string(l.Lane) + "|" + l.Campaign + "|" + l.Key }

// ParseLine is the inverse of Name for a line of shard.
func ParseLine(shard int, name string) (Line, error) {
	lane, rest, ok := strings.Cut(name, "|")
	campaign, key, ok2 := strings.Cut(rest, "|")
	if !ok || !ok2 {
		return Line{}, fmt.Errorf("line %q: not lane|campaign|key", name)
	}
	l, err := ParseLane(lane)
	if err != nil {
		return Line{}, err
	}
	return Line{Shard: shard, Lane: l, Campaign: campaign, Key: key}, nil
}

// LineStream is the key of a line's stream.
func (q *Queue) LineStream(l Line) string { return q.lineStream(l.Shard, l.Name()) }

// lineStream is the stream of the line of shard named name (Line.Name).
func (q *Queue) lineStream(shard int, name string) string { return q.ks.In(shard, "line", name) }

func (q *Queue) ready(shard int) string { return q.ks.In(shard, "ready") }

func (q *Queue) lines(shard int) string { return q.ks.In(shard, "lines") }

// luaIntoLine puts an entry back in line stream k named n (field f,
// JobField or PackField, holding raw), creating its group when the line is
// new, and makes the line due now (ZADD LT), whatever time an engine gone
// since had given it: a restart, a takeover, a put-back. (A routed job
// keeps a waiting line's time: see routeScript.)
const luaIntoLine = `
local function backIntoLine(k, n, f, raw, now)
  redis.call('XADD', k, '*', f, raw)
  if redis.call('SADD', KEYS[2], n) == 1 then
    pcall(redis.call, 'XGROUP', 'CREATE', k, 'engines', '0')
  end
  redis.call('ZADD', KEYS[1], 'LT', now, n)
end
local function nowMs()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
`

// Poll reads every shard's ready set in one pipelined round trip (its n
// earliest lines each) and returns the lines worth reading now, longest
// waiting first within a shard, and when the earliest of the others is
// due (zero when none waits). The lines of first are scored as Defer
// does before the reads, in the same round trip.
func (q *Queue) Poll(ctx context.Context, now time.Time, n int, first map[Line]time.Time) ([]Line, time.Time, error) {
	pipe := q.rdb.Pipeline()
	q.deferIn(ctx, pipe, first)
	cmds := make([]*redis.ZSliceCmd, keyspace.Shards)
	for shard := range cmds {
		cmds[shard] = pipe.ZRangeWithScores(ctx, q.ready(shard), 0, int64(n-1))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, time.Time{}, fmt.Errorf("due lines: %w", err)
	}
	var out []Line
	var next time.Time
	limit := float64(now.UnixMilli())
	for shard, c := range cmds {
		for _, z := range c.Val() {
			name, _ := z.Member.(string)
			if z.Score > limit {
				if at := time.UnixMilli(int64(z.Score)); next.IsZero() || at.Before(next) {
					next = at
				}
				break
			}
			l, err := ParseLine(shard, name)
			if err != nil {
				q.rdb.ZRem(ctx, q.ready(shard), name) // not ours: never read again
				continue
			}
			out = append(out, l)
		}
	}
	return out, next, nil
}

// Defer scores lines already in the ready set to be read again at the
// given times (the throttle said "not before"), in one round trip.
func (q *Queue) Defer(ctx context.Context, at map[Line]time.Time) error {
	if len(at) == 0 {
		return nil
	}
	pipe := q.rdb.Pipeline()
	q.deferIn(ctx, pipe, at)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("defer lines: %w", err)
	}
	return nil
}

// deferIn queues Defer's scores of at in pipe.
func (q *Queue) deferIn(ctx context.Context, pipe redis.Pipeliner, at map[Line]time.Time) []*redis.IntCmd {
	cmds := make([]*redis.IntCmd, 0, len(at))
	for l, t := range at {
		cmds = append(cmds, pipe.ZAddXX(ctx, q.ready(l.Shard), redis.Z{Score: float64(t.UnixMilli()), Member: l.Name()}))
	}
	return cmds
}

// deferred is the error of the first of Defer's scores that failed.
func deferred(cmds []*redis.IntCmd) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("defer lines: %w", err)
		}
	}
	return nil
}

// takeScript reads up to ARGV[3] new jobs of line KEYS[3] for this
// consumer. A line with jobs left goes to the back of the ready set (so
// lines sharing a key take turns); one with nothing new leaves it, and an
// empty one is deleted. The reply is {entries, jobs still waiting}.
var takeScript = redis.NewScript(luaIntoLine + luaLetGo + `
local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]), 'STREAMS', KEYS[3], '>')
local entries = {}
if got then entries = got[1][2] end
local held, left = streamDepth(KEYS[3], ARGV[1])
if #entries < tonumber(ARGV[3]) then
  left = 0
  redis.call('ZREM', KEYS[1], ARGV[4])
  if held == 0 then
    redis.call('DEL', KEYS[3])
    redis.call('SREM', KEYS[2], ARGV[4])
  end
else
  if left > 0 then
    redis.call('ZADD', KEYS[1], 'XX', nowMs(), ARGV[4])
  else
    redis.call('ZREM', KEYS[1], ARGV[4])
  end
end
return {entries, left}
`)

// Take reads up to n entries of line l for this consumer (held until
// settled, as jobs read from a lane are), and says how many entries are
// left waiting in the line after them.
func (q *Queue) Take(ctx context.Context, l Line, n int) ([]Delivery, int, error) {
	rs, _ := q.TakeMany(ctx, []TakeAsk{{Line: l, N: n}}, nil)
	r := rs[0]
	return r.Jobs, r.Left, r.Err
}

// TakeAsk asks TakeMany for up to N entries of Line: N jobs, or more
// where entries are packs (a marketing line's: LinePack).
type TakeAsk struct {
	Line Line
	N    int
}

// Taken is what TakeMany took from one line: its jobs, read from Entries
// entries, how many entries are left waiting after them, or why the take
// failed.
type Taken struct {
	Jobs    []Delivery
	Entries int
	Left    int
	Err     error
}

// countEntries counts the entries ds were read from (a pack's jobs are
// read one after another).
func countEntries(ds []Delivery) int {
	n := 0
	for i := range ds {
		if i == 0 || ds[i].StreamID != ds[i-1].StreamID {
			n++
		}
	}
	return n
}

// TakeMany takes from several lines (each as Take does) in one
// pipelined round trip: a poll's due lines, however many shards they are
// in, and scores the lines of later as Defer does after the takes, in the
// same round trip (its error is Defer's). With replicas to wait for
// (WaitReplicas) each line's take is one script, so that one WAIT covers
// it, and later is scored apart; without, see takeDirect.
func (q *Queue) TakeMany(ctx context.Context, asks []TakeAsk, later map[Line]time.Time) ([]Taken, error) {
	if q.repl == nil {
		return q.takeDirect(ctx, asks, later)
	}
	calls := make([]scriptCall, len(asks))
	for i, a := range asks {
		calls[i] = scriptCall{keys: []string{q.ready(a.Line.Shard), q.lines(a.Line.Shard), q.LineStream(a.Line)},
			args: []any{Group, q.consumer, a.N, a.Line.Name()}}
	}
	out := make([]Taken, len(asks))
	for i, c := range q.runAllReplicated(ctx, takeScript, calls) {
		out[i] = q.taken(asks[i].Line, c)
	}
	return out, q.Defer(ctx, later)
}

func (q *Queue) taken(l Line, c *redis.Cmd) Taken {
	reply, err := c.Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Taken{Err: fmt.Errorf("take from line %s: %w", l.Name(), err)}
	}
	if len(reply) != 2 {
		return Taken{Err: fmt.Errorf("take from line %s: unexpected reply %v", l.Name(), reply)}
	}
	res, _ := reply[0].([]any)
	left, _ := reply[1].(int64)
	t := Taken{Left: int(left), Jobs: make([]Delivery, 0, len(res))}
	stream := q.LineStream(l)
	for _, e := range res {
		m, ok := e.([]any)
		if !ok || len(m) != 2 {
			continue
		}
		id, _ := m[0].(string)
		fields, _ := m[1].([]any)
		var raw, pack string
		for i := 0; i+1 < len(fields); i += 2 {
			switch f, _ := fields[i].(string); f {
			case JobField:
				raw, _ = fields[i+1].(string)
			case PackField:
				pack, _ = fields[i+1].(string)
			}
		}
		if pack != "" {
			var err error
			if t.Jobs, err = appendPack(t.Jobs, id, stream, pack); err != nil {
				t.Err = fmt.Errorf("line %s: %w", l.Name(), err)
				return t
			}
			continue
		}
		j, err := decodeJob(raw)
		if err != nil {
			t.Err = fmt.Errorf("line %s entry %s: %w", l.Name(), id, err)
			return t
		}
		t.Jobs = append(t.Jobs, Delivery{Job: j, StreamID: id, Raw: raw, Stream: stream})
	}
	for i := range t.Jobs {
		t.Jobs[i].Key = l.Key
	}
	t.Entries = countEntries(t.Jobs)
	return t
}

// requeueScript puts this consumer's (ARGV[2]) pending entries of stream
// KEYS[3] back at its end as new entries, up to ARGV[3] at a time (a
// lane's pack as a whole); a line (ARGV[4] its name, empty for a lane) is
// made ready. Returns how many entries it read, and how many jobs.
var requeueScript = redis.NewScript(luaIntoLine + luaEntryJobs + `
local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]), 'STREAMS', KEYS[3], '0')
local entries = {}
if got then entries = got[1][2] end
local now = nowMs()
local n = 0
for _, e in ipairs(entries) do
  local f, raw = entryJobs(e[2])
  redis.call('XACK', KEYS[3], ARGV[1], e[1])
  redis.call('XDEL', KEYS[3], e[1])
  if raw then
    if ARGV[4] ~= '' then backIntoLine(KEYS[3], ARGV[4], f, raw, now) else redis.call('XADD', KEYS[3], '*', f, raw) end
    n = n + jobsIn(f, raw)
  end
end
return {#entries, n}
`)

// RequeueOwn puts every job this consumer holds in lane l, in every
// shard, back in line (at a start: whatever a previous run of this
// consumer held is attempted again once, by whichever engine gets to it).
func (q *Queue) RequeueOwn(ctx context.Context, l Lane) (int, error) {
	total := 0
	for shard := 0; shard < keyspace.Shards; shard++ {
		n, err := q.requeueOwn(ctx, shard, q.Stream(shard, l), nil)
		total += n
		if err != nil {
			return total, err
		}
	}
	if total > 0 {
		q.ring(ctx, l)
	}
	return total, nil
}

// RequeueOwnLine is RequeueOwn for line l.
func (q *Queue) RequeueOwnLine(ctx context.Context, l Line) (int, error) {
	return q.requeueOwn(ctx, l.Shard, q.LineStream(l), &l)
}

func (q *Queue) requeueOwn(ctx context.Context, shard int, stream string, line *Line) (int, error) {
	name := ""
	if line != nil {
		name = line.Name()
	}
	total := 0
	for {
		n, err := requeueScript.Run(ctx, q.rdb, []string{q.ready(shard), q.lines(shard), stream}, Group, q.consumer, 500, name).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("requeue own jobs of %s: %w", stream, err)
		}
		if len(n) != 2 {
			return total, fmt.Errorf("requeue own jobs of %s: a reply of %d numbers", stream, len(n))
		}
		total += int(n[1])
		if n[0] < 500 {
			return total, nil
		}
	}
}

// Lines calls fn for every line that exists, shard by shard.
func (q *Queue) Lines(ctx context.Context, fn func(Line) error) error {
	return q.scanLines(ctx, "", fn)
}

// scanLines calls fn for every line whose name matches the glob match
// ("": all), in every shard's lines set.
func (q *Queue) scanLines(ctx context.Context, match string, fn func(Line) error) error {
	for shard := 0; shard < keyspace.Shards; shard++ {
		iter := q.rdb.SScan(ctx, q.lines(shard), 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			l, err := ParseLine(shard, iter.Val())
			if err != nil {
				continue
			}
			if err := fn(l); err != nil {
				return err
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("list lines: %w", err)
		}
	}
	return nil
}

// putBackScript puts the given entries of line stream KEYS[3] (ARGV[4..],
// per entry its id, field, value and number of jobs) back at its end,
// each only while this consumer (ARGV[2]) still holds it; it returns how
// many jobs went back.
var putBackScript = redis.NewScript(luaIntoLine + `
local now = nowMs()
local n = 0
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[3], ARGV[1], id, id, 1, ARGV[2]) > 0 then
    redis.call('XACK', KEYS[3], ARGV[1], id)
    redis.call('XDEL', KEYS[3], id)
    backIntoLine(KEYS[3], ARGV[3], ARGV[i + 1], ARGV[i + 2], now)
    n = n + tonumber(ARGV[i + 3])
  end
end
return n
`)

// PutBack puts held jobs of line l back at its end (jobs a lost reply
// handed this consumer without its knowing, the rest of a run the
// throttle will not have soon); it returns how many. A pack goes back
// whole, as one entry: a pack some of whose jobs are missing from ds is
// left as it is (its holder puts it back or settles it whole).
func (q *Queue) PutBack(ctx context.Context, l Line, ds []Delivery) (int, error) {
	args := []any{Group, q.consumer, l.Name()}
	for _, e := range entriesOf(ds) {
		if e.whole {
			args = append(args, e.id, e.field, e.value, e.jobs)
		}
	}
	if len(args) == 3 {
		return 0, nil
	}
	n, err := putBackScript.Run(ctx, q.rdb, []string{q.ready(l.Shard), q.lines(l.Shard), q.LineStream(l)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("put back %d jobs of line %s: %w", len(ds), l.Name(), err)
	}
	return n, nil
}

// cancelLineScript settles the jobs of up to ARGV[1] entries of a
// cancelled campaign's line (KEYS[1]; a pack's every job) as cancelled
// without sending them, and returns how many jobs; a line left with
// nothing new leaves the ready set (KEYS[4]) and an empty one is deleted
// (and leaves the lines set, KEYS[5]; ARGV[3] its name, ARGV[4] the
// group, ARGV[5] this consumer).
var cancelLineScript = redis.NewScript(luaEvent + luaJobEvent + luaFinal + luaCancelJob + luaLetGo + `
local got = redis.call('XREADGROUP', 'GROUP', ARGV[4], ARGV[5], 'COUNT', tonumber(ARGV[1]), 'STREAMS', KEYS[1], '>')
local entries = {}
if got then entries = got[1][2] end
local jobs = 0
for _, e in ipairs(entries) do
  for i = 1, #e[2], 2 do
    if e[2][i] == 'j' then
      cancelJob(e[2][i + 1], KEYS[6], ARGV[6])
      jobs = jobs + 1
    elseif e[2][i] == 'p' then
      for raw in string.gmatch(e[2][i + 1], '([^\n]+)\n') do
        cancelJob(raw, KEYS[6], ARGV[6])
        jobs = jobs + 1
      end
    end
  end
  redis.call('XACK', KEYS[1], ARGV[4], e[1])
  redis.call('XDEL', KEYS[1], e[1])
end
if #entries < tonumber(ARGV[1]) then
  redis.call('ZREM', KEYS[4], ARGV[3])
  local held, unread = streamDepth(KEYS[1], ARGV[4])
  if held == 0 and unread == 0 then
    redis.call('DEL', KEYS[1])
    redis.call('SREM', KEYS[5], ARGV[3])
  end
end
return jobs
`)

// CancelLine settles the waiting jobs of up to n entries of a cancelled
// campaign's line l as cancelled in t, without sending them or asking the
// throttle, and returns how many jobs.
func (q *Queue) CancelLine(ctx context.Context, l Line, t Tally, n int) (int, error) {
	t = t.In(l.Shard)
	done, err := cancelLineScript.Run(ctx, q.rdb, []string{q.LineStream(l), t.Counters, t.Records, q.ready(l.Shard), q.lines(l.Shard), q.EventsKey(l.Shard)},
		n, Record{Status: string(outcome.Cancelled), Reason: "cancelled"}.Encode(), l.Name(), Group, q.consumer, eventTime()).Int()
	if err != nil {
		return 0, fmt.Errorf("cancel jobs of line %s: %w", l.Name(), err)
	}
	return done, nil
}

var dropLineScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`)

// DropLine deletes line l with every job in it: its campaign was deleted,
// and there is nothing left to record their outcomes in.
func (q *Queue) DropLine(ctx context.Context, l Line) error {
	if err := dropLineScript.Run(ctx, q.rdb, []string{q.LineStream(l), q.ready(l.Shard), q.lines(l.Shard)}, l.Name()).Err(); err != nil {
		return fmt.Errorf("drop line %s: %w", l.Name(), err)
	}
	return nil
}
