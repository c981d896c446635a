package streams

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// settleRunScript settles the jobs of one or more runs of one line (so of
// one shard) in one step: one XPENDING over the run's id range checks
// which this consumer still holds, one HMGET reads their records, one
// HSET writes them, one HINCRBY per counter that moves, one ZADD puts the
// deferred ones' next attempts in the retry set, one XACK lets go of
// them all (letGo), and their events go to the shard's events stream
// as one entry. A job no longer held is left alone (0); one whose record
// is final already is acknowledged and nothing counted (2); the others
// are recorded (1). A job marked to go back (status "back", the record
// its raw job: a job of a pack its run did not attempt) goes back in
// its line as an entry of its own (3) and records nothing: its pack is
// let go of in the same step as its attempted jobs' outcomes. The line
// is made ready unless it is in the ready set already (a time the
// throttle gave it stands).
//
// KEYS: line (or lane) stream, retry set, counters, records, events, the
// shard's ready and lines sets, then the stored messages of the items that
// have one.
// ARGV: group, consumer, first id, last id, line name (for jobs going
// back), then per item: entry id, record field, record, status, retry at,
// next attempt, message key index (0: none), event.
var settleRunScript = redis.NewScript(luaEvents + luaFinal + luaLetGo + `
local group, consumer = ARGV[1], ARGV[2]
local held = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], group, ARGV[3], ARGV[4], 100000, consumer)) do
  held[p[1]] = true
end
local items, fields, acks, backs = {}, {}, {}, 0
local out = {}
for i = 6, #ARGV, 8 do
  local at = (i - 6) / 8 + 1
  out[at] = 0
  if held[ARGV[i]] then
    if held[ARGV[i]] == true then
      held[ARGV[i]] = 1
      acks[#acks + 1] = ARGV[i]
    end
    if ARGV[i + 3] == 'back' then
      redis.call('XADD', KEYS[1], '*', 'j', ARGV[i + 2])
      out[at], backs = 3, backs + 1
    else
      items[#items + 1] = i
      fields[#fields + 1] = ARGV[i + 1]
    end
  end
end
if backs > 0 then
  redis.call('SADD', KEYS[7], ARGV[5])
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[6], 'NX', t[1] * 1000 + math.floor(t[2] / 1000), ARGV[5])
end
if #acks == 0 then return out end
local prev = {}
if #fields > 0 then prev = redis.call('HMGET', KEYS[4], unpack(fields)) end
local hset, zadd, dels, evs, incr = {}, {}, {}, {}, {}
local function add(k, by) incr[k] = (incr[k] or 0) + by end
for k, i in ipairs(items) do
  local ps = ''
  if prev[k] then ps = string.match(prev[k], '^{"s":"(%a+)"') or '' end
  if final[ps] then
    out[(i - 6) / 8 + 1] = 2
  else
    out[(i - 6) / 8 + 1] = 1
    local status = ARGV[i + 3]
    hset[#hset + 1] = ARGV[i + 1]
    hset[#hset + 1] = ARGV[i + 2]
    if status == 'deferred' then
      zadd[#zadd + 1] = ARGV[i + 4]
      zadd[#zadd + 1] = ARGV[i + 5]
      if ps ~= 'deferred' then add('deferred', 1) end
    else
      if ARGV[i + 6] ~= '0' then dels[#dels + 1] = KEYS[tonumber(ARGV[i + 6])] end
      add(status, 1)
      add('queued', -1)
      if ps == 'deferred' then add('deferred', -1) end
    end
    if ARGV[i + 7] ~= '' then evs[#evs + 1] = ARGV[i + 7] end
  end
end
if #hset > 0 then redis.call('HSET', KEYS[4], unpack(hset)) end
for k, by in pairs(incr) do
  if by ~= 0 then redis.call('HINCRBY', KEYS[3], k, by) end
end
if #zadd > 0 then redis.call('ZADD', KEYS[2], unpack(zadd)) end
if #dels > 0 then redis.call('DEL', unpack(dels)) end
letGo(KEYS[1], group, acks)
events(KEYS[5], evs)
return out
`)

// Settlement is one job's outcome to settle in its tally: its record
// and, for a deferral (status "deferred"), the next attempt due at
// RetryAt.
type Settlement struct {
	D       Delivery
	Tally   Tally
	Rec     Record
	Next    *Job
	RetryAt time.Time
	// Back puts D back in Line as an entry of its own instead, recording
	// nothing (Rec unused): a job of a pack (D.Pack) whose run ends
	// before attempting it, settled in the same step as the pack's
	// attempted jobs (a pack is let go of only as a whole).
	Back bool
	Line *Line
}

// statusBack marks an item going back in its line (Settlement.Back).
const statusBack = "back"

// settleCall is the settle script's call for ss (one stream's), and the
// earliest retry it schedules (zero: none).
func (q *Queue) settleCall(ss []*Settlement) (scriptCall, time.Time, error) {
	first := ss[0].D
	shard := first.Shard()
	tt := ss[0].Tally.In(shard)
	keys := []string{q.held(first), q.Delayed(shard, first.Lane), tt.Counters, tt.Records, q.EventsKey(shard), q.ready(shard), q.lines(shard)}
	lo, hi := first.StreamID, first.StreamID
	args := make([]any, 5, 5+8*len(ss))
	args[0], args[1], args[4] = Group, q.consumer, ""
	var next time.Time
	for _, s := range ss {
		if streamIDLess(s.D.StreamID, lo) {
			lo = s.D.StreamID
		}
		if streamIDLess(hi, s.D.StreamID) {
			hi = s.D.StreamID
		}
		if s.Back {
			if s.Line == nil {
				return scriptCall{}, next, fmt.Errorf("settle %s: going back without its line", s.D.ID)
			}
			args[4] = s.Line.Name()
			args = append(args, &s.D.StreamID, "", &s.D.Raw, statusBack, 0, "", 0, "")
			continue
		}
		var nextRaw string
		if s.Rec.Status == string(outcome.Deferred) {
			if s.Next == nil {
				return scriptCall{}, next, fmt.Errorf("settle %s: deferred without a next attempt", s.D.ID)
			}
			var err error
			if nextRaw, err = s.Next.encode(); err != nil {
				return scriptCall{}, next, err
			}
			if next.IsZero() || s.RetryAt.Before(next) {
				next = s.RetryAt
			}
		}
		msg := 0
		if s.D.HasMessage {
			keys = append(keys, q.MessageKey(s.D.ID))
			msg = len(keys)
		}
		// Fields of *s go as pointers (go-redis writes a *string's
		// text): boxing a string into an any allocates.
		args = append(args, &s.D.StreamID, s.D.RecordField(), s.Rec.Encode(), &s.Rec.Status, s.RetryAt.UnixMilli(), nextRaw, msg, settleEvent(s.D, s.Rec))
	}
	args[2], args[3] = lo, hi
	return scriptCall{keys, args}, next, nil
}

// streamIDLess orders stream entry ids ("ms-seq"). It runs twice per
// settled job: fmt.Sscanf here was 6% of the engine's CPU.
func streamIDLess(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

// splitStreamID parses "ms-seq"; a malformed part reads as 0.
func splitStreamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}
