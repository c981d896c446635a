package streams

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// routeScript moves routed jobs from the lane stream (KEYS[3]) into their
// lines (KEYS[5..]): each only while this consumer still holds its entry
// (one XPENDING over the batch's range, ARGV[3] to ARGV[4]), the entries
// acknowledged in one XACK and let go of (letGo), each line marked once.
// A line's jobs of the call go in as packs of up to ARGV[5] jobs
// (PackField; 1: an entry each, JobField), in their order. A job with no
// line (its name empty) goes back into the lane as an entry of its own: a
// job of a pack that needs a step of its own (Routed.Back). Every job of a
// lane pack is in the call, so a pack is let go of only with all its jobs
// in their places.
// The lane packs let go of are taken off the lane's count of packs (KEYS[4]).
// ARGV: group, consumer, first and last entry id, line pack size, then
// per job: entry id, line name, raw job, and for a job of a lane pack the
// pack's size (an empty string for a job of its own).
var routeScript = redis.NewScript(luaIntoLine + luaLetGo + `
local now = nowMs()
local n = (#ARGV - 5) / 4
local size = tonumber(ARGV[5])
local packs, packed = 0, 0
local held = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[3], ARGV[1], ARGV[3], ARGV[4], n, ARGV[2])) do
  held[p[1]] = true
end
local ids, moved = {}, 0
local order, into = {}, {} -- line names in first-seen order; per name {key, raws}
for i = 6, #ARGV, 4 do
  local id = ARGV[i]
  if held[id] then
    if held[id] == true then
      held[id] = 1
      ids[#ids + 1] = id
      if ARGV[i + 3] ~= '' then
        packs, packed = packs + 1, packed + tonumber(ARGV[i + 3])
      end
    end
    moved = moved + 1
    local name = ARGV[i + 1]
    if name == '' then
      redis.call('XADD', KEYS[3], '*', 'j', ARGV[i + 2])
    else
      local l = into[name]
      if not l then
        l = {KEYS[5 + (i - 6) / 4], {}}
        into[name] = l
        order[#order + 1] = name
      end
      l[2][#l[2] + 1] = ARGV[i + 2]
    end
  end
end
for _, name in ipairs(order) do
  local k, raws = into[name][1], into[name][2]
  if size <= 1 or #raws == 1 then
    for _, raw in ipairs(raws) do redis.call('XADD', k, '*', 'j', raw) end
  else
    for a = 1, #raws, size do
      local b = math.min(a + size - 1, #raws)
      if b == a then
        redis.call('XADD', k, '*', 'j', raws[a])
      else
        raws[b] = raws[b] .. '\n' -- the pack's last newline, on its last job: one string made once
        redis.call('XADD', k, '*', 'p', table.concat(raws, '\n', a, b))
      end
    end
  end
  if redis.call('SADD', KEYS[2], name) == 1 then
    pcall(redis.call, 'XGROUP', 'CREATE', k, 'engines', '0')
  end
  redis.call('ZADD', KEYS[1], 'NX', now, name)
end
if #ids > 0 then letGo(KEYS[3], ARGV[1], ids) end
if packs > 0 then
  redis.call('HINCRBY', KEYS[4], 'entries', -packs)
  redis.call('HINCRBY', KEYS[4], 'jobs', -packed)
end
return moved
`)

// LinePack is how many jobs of a campaign's line one line entry holds at
// most (PackField): the jobs of a route call bound for one line go in
// together, so each costs Redis neither an entry of its own to add, hand
// out (an XCLAIM in the replication stream) and acknowledge, nor the
// replica those commands. A pack is taken, attempted, settled and put back
// whole by one worker's run (see the engine's work loop). Transactional
// lines keep an entry a job.
const LinePack = 10

// Routed is a job read from a lane with the line it belongs in.
type Routed struct {
	Delivery
	Line Line
	// Back puts the job back in its lane as an entry of its own instead
	// (Line unused): a job of a pack (Delivery.Pack) that its router
	// must settle, park or put off, which it does once the job is read
	// again on its own.
	Back bool
}

// Route moves held jobs of lane l into their lines, atomically per
// shard (the shards' steps in one pipelined round trip): the lane entry
// goes and the line entry comes in one step. It returns how many jobs
// moved (jobs no longer held by this consumer are left alone). Each
// job's line must be of its shard, and every job of a pack must be in
// rs, routed or Back.
func (q *Queue) Route(ctx context.Context, l Lane, rs []Routed) (int, error) {
	byShard := map[int][]int{} // indices in rs
	for i := range rs {
		byShard[rs[i].Shard()] = append(byShard[rs[i].Shard()], i)
	}
	var calls []scriptCall
	for shard, at := range byShard {
		keys := make([]string, 4, 4+len(at))
		keys[0], keys[1], keys[2], keys[3] = q.ready(shard), q.lines(shard), q.Stream(shard, l), q.packs(shard, l)
		args := make([]any, 5, 5+4*len(at))
		first, last := rs[at[0]].StreamID, rs[at[0]].StreamID
		for _, i := range at {
			id := rs[i].StreamID
			if streamIDLess(id, first) {
				first = id
			}
			if streamIDLess(last, id) {
				last = id
			}
		}
		args[0], args[1], args[2], args[3], args[4] = Group, q.consumer, first, last, 1
		if l == Marketing {
			args[4] = q.linePack.Load()
		}
		for _, i := range at {
			r := &rs[i]
			size := ""
			if r.Pack > 1 {
				size = strconv.Itoa(r.Pack) // counted once a pack, at its first job in the call
			}
			name := ""
			if r.Back {
				keys = append(keys, keys[2])
			} else {
				name = r.Line.Name()
				keys = append(keys, q.lineStream(shard, name))
			}
			args = append(args, &r.StreamID, name, &r.Raw, size) // pointers: see settleCall
		}
		calls = append(calls, scriptCall{keys, args})
	}
	total := 0
	for _, c := range q.runAllReplicated(ctx, routeScript, calls) {
		n, err := c.Int()
		if err != nil {
			return total, fmt.Errorf("route jobs of %s: %w", l, err)
		}
		total += n
	}
	return total, nil
}
