package streams

import (
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
)

// runEntry is the events entry of the jobs at pos of b's items, new
// recipients of one campaign, as a run (events.RunField): their queued
// events, all of b's time.
func (b *Batch) runEntry(key string, pos []int) streamAdd {
	r := events.Run{Type: events.Queued, Time: b.now(), Campaign: b.items[pos[0]].camp, Jobs: make([]string, 0, 2*len(pos))}
	size := 64 + len(r.Campaign)
	for _, i := range pos {
		r.Jobs = append(r.Jobs, b.items[i].id, b.items[i].to)
		size += len(b.items[i].id) + len(b.items[i].to) + 6
	}
	raw, ok := r.Append(make([]byte, 0, size))
	if !ok { // a time JSON cannot hold: as Event.Encode does with it
		evs := make([]string, len(pos))
		for k, i := range pos {
			evs[k] = b.event(&b.items[i])
		}
		return streamAdd{key, events.BatchField, "[" + strings.Join(evs, ",") + "]"}
	}
	return streamAdd{key, events.RunField, raw}
}

// freshScript is enqueueScript for a part of a batch whose recipients
// the campaign cannot have yet (Batch.AddNew) and whose jobs go in packs:
// nothing to look up, no duplicate to cut out, so its packs and its
// events entry are added by plain XADDs just before the script, in the
// same transaction (runTx). A launch's packs and events are most of its
// bytes: passed to a script, each is copied into a Lua string and back
// and makes work for Lua's garbage collector (a third of redis-server's
// instructions per row). The script claims the records, moves the
// checkpoint and counts; when the checkpoint has moved (another launch
// of the campaign), it deletes the transaction's entries, the streams'
// newest (nothing runs between them), and fails as enqueueScript does.
// The script is small, its comments out here: inside a transaction it
// is sent whole (EVAL), and Redis hashes its text each time.
//
// undo(key, c) deletes the c newest entries of stream key, added by this
// transaction and unread, and tells the stream's groups they read them:
// Redis counts a group's lag as entries added less entries read, and
// would count the deleted ones as never read. A new records hash is
// made a hash table at once, as in enqueueScript.
//
// KEYS: the lane stream, the counters, the records, the events stream,
// the lane's count of packs. ARGV: the checkpoint ("" none), its field,
// the checkpoint the shard must be at, how many packs were added, the
// jobs, the recipients settled without sending, the duplicates the
// caller left out, then each recipient's record field and record.
var freshScript = redis.NewScript(`
local packs = tonumber(ARGV[4])
local function undo(key, c)
  local ids = {}
  for _, e in ipairs(redis.call('XREVRANGE', key, '+', '-', 'COUNT', c)) do ids[#ids + 1] = e[1] end
  if #ids == 0 then return end
  redis.call('XDEL', key, unpack(ids))
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if type(f['entries-read']) == 'number' then
      redis.call('XGROUP', 'SETID', key, f['name'], f['last-delivered-id'], 'ENTRIESREAD', f['entries-read'] + #ids)
    end
  end
end
if ARGV[1] ~= '' and ARGV[2] ~= '' then
  local at = redis.call('HGET', KEYS[2], ARGV[2])
  if (tonumber(at) or 0) ~= (tonumber(ARGV[3]) or 0) then
    if packs > 0 then undo(KEYS[1], packs) end
    undo(KEYS[4], 1)
    return redis.error_reply('MOVED_CHECKPOINT ' .. tostring(at))
  end
end
local fresh = redis.call('EXISTS', KEYS[3]) == 0
if fresh then redis.call('HSET', KEYS[3], '', string.rep('-', 65)) end
for from = 8, #ARGV, 2000 do
  redis.call('HSET', KEYS[3], unpack(ARGV, from, math.min(#ARGV, from + 1999)))
end
if fresh then redis.call('HDEL', KEYS[3], '') end
local added, supp, given = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if packs > 0 then
  redis.call('HINCRBY', KEYS[5], 'entries', packs)
  redis.call('HINCRBY', KEYS[5], 'jobs', added)
end
if added + supp > 0 then redis.call('HINCRBY', KEYS[2], 'total', added + supp) end
if added > 0 then redis.call('HINCRBY', KEYS[2], 'queued', added) end
if supp > 0 then redis.call('HINCRBY', KEYS[2], 'suppressed', supp) end
if given > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', given) end
if ARGV[1] ~= '' and ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) end
return {added, supp, 0}
`)

// freshCall is the part at pos of b's items as a freshScript run after
// its packs and its events entry ev (see freshScript): keys as
// enqueueScript's.
func freshCall(b *Batch, pos []int, keys []string, since int, given int, queued string, ev streamAdd) txCall {
	var c txCall
	jobs, finals := 0, 0
	args := make([]any, 7, 7+2*len(pos))
	for _, i := range pos {
		it := &b.items[i]
		if it.kind == 'j' {
			jobs++
			args = append(args, it.field, queued)
		} else {
			finals++
			args = append(args, it.field, it.payload)
		}
	}
	packs := packsOf(b.items, pos, b.Pack)
	for _, p := range packs {
		c.adds = append(c.adds, streamAdd{keys[0], PackField, p})
	}
	c.adds = append(c.adds, ev)
	args[0], args[1], args[2], args[3], args[4], args[5], args[6] = b.Checkpoint, b.Tally.CheckpointField, since, len(packs), jobs, finals, given
	c.call = scriptCall{keys: []string{keys[0], keys[1], keys[2], keys[4], keys[5]}, args: args}
	return c
}
