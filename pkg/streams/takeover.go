package streams

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Engines is the key of the heartbeat hash: consumer name → last sign of
// life (Redis TIME, unix ms). Every engine writes its own field; a job is
// only taken over from a consumer whose field has gone stale.
func (q *Queue) Engines() string { return q.ks.Key("engines") }

// Reads is the key of what each engine reads, beside the heartbeat hash
// (consumer name → the words of what it reads, ReadsPacks, ReadsRuns
// and ReadsLinePacks for this version): an engine of a version from
// before the packs writes nothing there, one from before the runs of
// events only "packs", and neither a launch nor a router writes what some
// running engine lacks (Lacking).
func (q *Queue) Reads() string { return q.ks.Key("engines", "reads") }

// What an engine reads (Reads).
const (
	ReadsPacks     = "packs"     // a launch's packs of jobs in a lane (PackField)
	ReadsRuns      = "runs"      // runs of events (events.RunField), as its event log's readers
	ReadsLinePacks = "linepacks" // packs of jobs in a line (LinePack), taken and let go of whole
)

// reads is what an engine of this version reads.
const reads = ReadsPacks + " " + ReadsRuns + " " + ReadsLinePacks

// luaBeats defines beatsWhere(key, keep): the engines of heartbeat hash
// key for which keep(name, age in ms by Redis's clock) holds.
const luaBeats = `
local function beatsWhere(key, keep)
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local out = {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if keep(all[i], now - tonumber(all[i + 1])) then out[#out + 1] = all[i] end
  end
  return out
end
`

var beatScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// Beat records that this consumer is alive, in Redis's clock (engines'
// clocks may disagree; Redis's is the one all of them compare against),
// and what it reads.
func (q *Queue) Beat(ctx context.Context) error {
	if err := beatScript.Run(ctx, q.rdb, []string{q.Engines(), q.Reads()}, q.consumer, reads).Err(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

var lackingScript = redis.NewScript(luaBeats + `
return beatsWhere(KEYS[1], function(name, age)
  local reads = redis.call('HGET', KEYS[2], name)
  return age < tonumber(ARGV[1]) and not (reads and string.find(' ' .. reads .. ' ', ' ' .. ARGV[2] .. ' ', 1, true))
end)
`)

// Lacking lists, for each word of what (ReadsPacks, ReadsRuns), the
// engines that beat within the last live and do not read it: engines of
// a version from before it, which would fail to read a pack (and put it
// back without its jobs) or a run of events. A launch writes neither
// while such an engine runs. One round trip for all the words.
func (q *Queue) Lacking(ctx context.Context, live time.Duration, what ...string) ([][]string, error) {
	calls := make([]scriptCall, len(what))
	for i, w := range what {
		calls[i] = scriptCall{keys: []string{q.Engines(), q.Reads()}, args: []any{live.Milliseconds(), w}}
	}
	out := make([][]string, len(what))
	for i, c := range runAll(ctx, q.rdb, lackingScript, calls) {
		names, err := c.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("engines' versions: %w", err)
		}
		out[i] = names
	}
	return out, nil
}

// Holder is a consumer of a lane's group with jobs pending.
type Holder struct {
	Name    string
	Pending int64
}

// Holders lists the other consumers of lane l that hold jobs, summed over
// the shards.
func (q *Queue) Holders(ctx context.Context, l Lane) ([]Holder, error) {
	sum := map[string]int64{}
	var order []string
	for shard := 0; shard < keyspace.Shards; shard++ {
		cs, err := q.rdb.XInfoConsumers(ctx, q.Stream(shard, l), Group).Result()
		if err != nil {
			return nil, fmt.Errorf("consumers of %s: %w", l, err)
		}
		for _, c := range cs {
			if c.Name != q.consumer && c.Pending > 0 {
				if _, ok := sum[c.Name]; !ok {
					order = append(order, c.Name)
				}
				sum[c.Name] += c.Pending
			}
		}
	}
	out := make([]Holder, len(order))
	for i, name := range order {
		out[i] = Holder{Name: name, Pending: sum[name]}
	}
	return out, nil
}

// takeOverScript puts up to ARGV[4] jobs of a silent consumer (ARGV[2])
// in stream KEYS[3] back at the stream's end as new entries (in a line,
// ARGV[6] its name, the line is made ready). ARGV[5] is the idle time a
// job must have (0 when the consumer's heartbeat was found stale just
// before: see TakeOver). When the silent consumer holds nothing more in
// the stream it leaves the stream's group. Returns the number of jobs
// put back.
var takeOverScript = redis.NewScript(luaIntoLine + luaEntryJobs + `
local now = nowMs()
local ps = redis.call('XPENDING', KEYS[3], ARGV[1], 'IDLE', tonumber(ARGV[5]), '-', '+', tonumber(ARGV[4]), ARGV[2])
local n = 0
for _, p in ipairs(ps) do
  local got = redis.call('XCLAIM', KEYS[3], ARGV[1], ARGV[3], 0, p[1])
  redis.call('XACK', KEYS[3], ARGV[1], p[1])
  redis.call('XDEL', KEYS[3], p[1])
  local e = got[1]
  if e and e[2] then
    local f, raw = entryJobs(e[2])
    if raw then
      if ARGV[6] ~= '' then backIntoLine(KEYS[3], ARGV[6], f, raw, now) else redis.call('XADD', KEYS[3], '*', f, raw) end
      n = n + jobsIn(f, raw)
    end
  end
end
if #ps < tonumber(ARGV[4]) and #redis.call('XPENDING', KEYS[3], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[3], ARGV[1], ARGV[2])
end
return n
`)

// TakeOver puts every job of lane l (every shard) held by consumer from
// back in line for any engine, provided from has shown no sign of life
// for silence. It returns how many jobs it put back, and alive true when
// from is not silent (nothing moved).
func (q *Queue) TakeOver(ctx context.Context, l Lane, from string, silence time.Duration) (moved int, alive bool, err error) {
	for shard := 0; shard < keyspace.Shards; shard++ {
		n, a, err := q.takeOver(ctx, shard, q.Stream(shard, l), nil, from, silence)
		moved += n
		if err != nil || a {
			return moved, a, err
		}
	}
	if moved > 0 {
		q.ring(ctx, l)
	}
	return moved, false, nil
}

// TakeOverLine is TakeOver for line l.
func (q *Queue) TakeOverLine(ctx context.Context, l Line, from string, silence time.Duration) (moved int, alive bool, err error) {
	return q.takeOver(ctx, l.Shard, q.LineStream(l), &l, from, silence)
}

// takeOver checks from's heartbeat before each batch (the heartbeat is a
// shared key, the stream a shard's: they cannot be in one script), so an
// engine that comes back to life keeps its jobs but for the batch being
// moved as it beats, and a frozen one that wakes finds its jobs gone
// (settling checks the job is still held).
func (q *Queue) takeOver(ctx context.Context, shard int, stream string, l *Line, from string, silence time.Duration) (moved int, alive bool, err error) {
	const batch = 500
	name := ""
	if l != nil {
		name = l.Name()
	}
	for {
		silent, beats, err := q.silentFor(ctx, from, silence)
		if err != nil {
			return moved, false, err
		}
		if !silent {
			return moved, true, nil
		}
		minIdle := int64(0)
		if !beats {
			minIdle = silence.Milliseconds() // an engine of an older version: its jobs must be idle that long
		}
		n, err := takeOverScript.Run(ctx, q.rdb, []string{q.ready(shard), q.lines(shard), stream},
			Group, from, q.consumer, batch, minIdle, name).Int()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key") {
				return moved, false, nil // the line went away meanwhile
			}
			return moved, false, fmt.Errorf("take over %s's jobs in %s: %w", from, stream, err)
		}
		moved += n
		if n < batch {
			return moved, false, nil
		}
	}
}

var silentForScript = redis.NewScript(`
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if not beat then return -1 end
local t = redis.call('TIME')
return t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(beat)
`)

// silentFor says whether consumer from has not beaten for silence, and
// whether it has a heartbeat at all.
func (q *Queue) silentFor(ctx context.Context, from string, silence time.Duration) (silent, beats bool, err error) {
	ms, err := silentForScript.Run(ctx, q.rdb, []string{q.Engines()}, from).Int64()
	if err != nil {
		return false, false, fmt.Errorf("heartbeat of %s: %w", from, err)
	}
	if ms < 0 {
		return true, false, nil
	}
	return ms >= silence.Milliseconds(), true, nil
}

// silentScript lists the consumers (other than ARGV[2]) whose heartbeat
// is older than ARGV[1] ms.
var silentScript = redis.NewScript(luaBeats + `
return beatsWhere(KEYS[1], function(name, age)
  return name ~= ARGV[2] and age >= tonumber(ARGV[1])
end)
`)

// Silent lists the engines whose heartbeat has been silent for silence.
func (q *Queue) Silent(ctx context.Context, silence time.Duration) ([]string, error) {
	names, err := silentScript.Run(ctx, q.rdb, []string{q.Engines()}, silence.Milliseconds(), q.consumer).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("silent engines: %w", err)
	}
	return names, nil
}

var forgetScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if beat and now - tonumber(beat) >= tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
`)

// Forget removes a silent engine's heartbeat once its jobs were taken
// over everywhere (unless it beat again meanwhile).
func (q *Queue) Forget(ctx context.Context, name string, silence time.Duration) error {
	if err := forgetScript.Run(ctx, q.rdb, []string{q.Engines(), q.Reads()}, name, silence.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("forget engine %s: %w", name, err)
	}
	return nil
}
