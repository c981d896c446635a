package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// enqueueScript adds one shard's part of a batch of a campaign atomically:
// each recipient is claimed in the shard's records hash first (one HMGET
// for the part, one variadic HSET of the new ones), so an address already
// present (a duplicate row, or a batch re-sent after an interrupted
// launch) is never queued twice; then the shard's launch checkpoint (in
// its counters hash, at the field the tally names) moves past the batch.
// The events of the recipients it added go to the shard's events stream
// as one entry. It returns the counts, then the 0-based positions in the
// part of the duplicates.
//
// Arguments: checkpoint, the queued record, due (ms, 0: now), the
// checkpoint field, the recipients' kinds (one letter each: j a job, s
// settled without sending), their events joined by commas in brackets
// (a JSON array), the events' lengths joined by commas, how many
// duplicates within the part the caller left out (counted here with the
// others), then the recipients' record fields, then their payloads.
// Passing the events as one string spares the script a table of them:
// with no duplicate (the usual case) they are the entry's JSON array as
// given; only a part with duplicates is cut apart, by the lengths.
// ARGV[9] is the checkpoint the shard must be at (see Batch.Since),
// ARGV[10] the 1-based positions, comma-separated, of the recipients
// whose field is looked up: the others the caller knows the campaign
// cannot have yet (Batch.AddNew). The caller has found the part's own
// duplicates: per row, the script does little more than its HSET.
//
// ARGV[11] is how many packs (PackField) hold the part's jobs (Batch.Pack;
// 0: none, each job is an entry of its own). They follow the payloads
// (the jobs' payloads are then empty), cut apart only to leave out a
// duplicate, and are counted in the lane's count of packs (KEYS[6]). A
// part with no recipient to look up (no duplicate to cut out) is written
// by freshScript instead.
var enqueueScript = redis.NewScript(luaEvents + `
local kinds = ARGV[5]
local n = #kinds
local f0 = 11 -- ARGV[f0 + k] is recipient k's field, ARGV[f0 + n + k] its payload
local packs = tonumber(ARGV[11])
if ARGV[1] ~= '' and ARGV[4] ~= '' then
  local at = redis.call('HGET', KEYS[2], ARGV[4])
  if (tonumber(at) or 0) ~= (tonumber(ARGV[9]) or 0) then
    return redis.error_reply('MOVED_CHECKPOINT ' .. tostring(at))
  end
end
-- A new records hash is made a hash table at once: a field with a long
-- value (no record's field is empty), deleted once the records are in
-- (Redis never turns a hash table back). As a listpack, its first 512
-- records would each be looked up by a scan of the list: about 28 M
-- instructions per shard, a fifth of a 30,000-row launch.
local fresh = redis.call('EXISTS', KEYS[3]) == 0
if fresh then redis.call('HSET', KEYS[3], '', string.rep('-', 65)) end
local have, look = {}, {}
for k in string.gmatch(ARGV[10], '%d+') do look[#look + 1] = tonumber(k) end
for from = 1, #look, 1000 do
  local fields = {}
  for i = from, math.min(#look, from + 999) do fields[#fields + 1] = ARGV[f0 + look[i]] end
  local got = redis.call('HMGET', KEYS[3], unpack(fields))
  for i = 1, #got do have[look[from + i - 1]] = got[i] end
end
local now, alljobs, queued = ARGV[3] == '0', not string.find(kinds, 's', 1, true), ARGV[2]
local added, supp, dup, ns, nd, nj = 0, 0, 0, 0, 0, 0
local dups, set, delayed, dropj = {}, {}, {}, {}
for k = 1, n do
  local job = alljobs or string.byte(kinds, k) == 106 -- j
  if job then nj = nj + 1 end
  if have[k] then
    dup = dup + 1
    dups[dup] = k - 1
    if job then dropj[nj] = true end
  else
    local payload = ARGV[f0 + n + k]
    ns = ns + 1
    set[ns] = ARGV[f0 + k]
    if job then
      ns = ns + 1
      set[ns] = queued
      if packs > 0 then
        -- in a pack
      elseif now then
        redis.call('XADD', KEYS[1], '*', 'j', payload)
      else
        delayed[nd + 1] = ARGV[3]
        delayed[nd + 2] = payload
        nd = nd + 2
      end
      added = added + 1
    else
      ns = ns + 1
      set[ns] = payload
      supp = supp + 1
    end
  end
end
for from = 1, ns, 1000 do
  redis.call('HSET', KEYS[3], unpack(set, from, math.min(ns, from + 999)))
end
if packs > 0 and added > 0 then
  local made = packs
  local p0 = f0 + 2 * n -- ARGV[p0 + c] is pack c
  if dup == 0 then
    for c = 1, packs do redis.call('XADD', KEYS[1], '*', 'p', ARGV[p0 + c]) end
  else
    local j = 0
    made = 0
    for c = 1, packs do
      local kept = {}
      for raw in string.gmatch(ARGV[p0 + c], '[^\n]*\n') do
        j = j + 1
        if not dropj[j] then kept[#kept + 1] = raw end
      end
      if #kept > 0 then
        redis.call('XADD', KEYS[1], '*', 'p', table.concat(kept))
        made = made + 1
      end
    end
  end
  redis.call('HINCRBY', KEYS[6], 'entries', made)
  redis.call('HINCRBY', KEYS[6], 'jobs', added)
end
if fresh then redis.call('HDEL', KEYS[3], '') end
for from = 1, nd, 1000 do
  redis.call('ZADD', KEYS[4], unpack(delayed, from, math.min(nd, from + 999)))
end
local given = tonumber(ARGV[8])
if added + supp > 0 then redis.call('HINCRBY', KEYS[2], 'total', added + supp) end
if added > 0 then redis.call('HINCRBY', KEYS[2], 'queued', added) end
if supp > 0 then redis.call('HINCRBY', KEYS[2], 'suppressed', supp) end
if dup + given > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', dup + given) end
if ARGV[1] ~= '' and ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[1]) end
-- cut(all): the events of all (a JSON array) but the duplicates'.
local function cut(all)
  local evs, k, d, at = {}, 0, 1, 2
  for len in string.gmatch(ARGV[7], '%d+') do
    len = tonumber(len)
    if dups[d] == k then d = d + 1 else evs[#evs + 1] = string.sub(all, at, at + len - 1) end
    at, k = at + len + 1, k + 1
  end
  return evs
end
if dup == 0 and n > 1 then
  redis.call('XADD', KEYS[5], '*', '` + events.BatchField + `', ARGV[6])
elseif dup == 0 and n == 1 then
  events(KEYS[5], {string.sub(ARGV[6], 2, -2)})
elseif dup < n then
  events(KEYS[5], cut(ARGV[6]))
end
local out = {added, supp, dup}
for _, d in ipairs(dups) do out[#out + 1] = d end
return out
`)

// Batch is a group of jobs enqueued together: atomically per shard.
type Batch struct {
	Lane       Lane
	Tally      Tally
	Checkpoint string // recorded at Tally.CheckpointField of each shard written to; "" for none
	// Due, when set, holds the jobs in the lane's delayed set until then
	// (a scheduled campaign) instead of streaming them now.
	Due time.Time
	// Pack, when more than 1 and the jobs go in the lane now, puts up to
	// that many jobs of a shard in one lane entry (PackField): a launch's
	// jobs cost Redis one XADD a pack instead of one each, and the
	// router moves a pack into its lines in one step.
	Pack int
	// Since is, per shard, the checkpoint the shard must be at when the
	// batch is written there (0: none yet): the one a resumed launch
	// started from, then the one the last batch written there moved it
	// to (Enqueue sets it so for each shard it writes). A shard found
	// elsewhere refuses its part with ErrCheckpointMoved: another launch
	// of the campaign wrote to it. Checked only when the batch records a
	// checkpoint.
	Since [keyspace.Shards]int
	// Runs, when set, writes the queued events of a part of new
	// recipients in packs (AddNew) as one entry of field events.RunField
	// (a third of the bytes), which every reader of the events must know
	// (Lacking).
	Runs  bool
	items []batchItem
	at    time.Time // its events' time: when the first job was added
}

// ErrCheckpointMoved is an enqueue's error when a shard's checkpoint is
// not at the batch's Since: another launch of the same campaign is (or
// was, since this one read the checkpoints) writing it.
var ErrCheckpointMoved = errors.New("the shard's launch checkpoint moved: is another launch of this campaign running?")

type batchItem struct {
	shard          int
	kind           byte // 'j' a job, 's' settled without sending
	field, payload string
	event          string // a final's event; a job's is made when needed (Batch.event)
	fresh          bool   // not looked up: the campaign cannot have it yet
	id, to, camp   string // the job's
}

// Add queues a job in the batch.
func (b *Batch) Add(j *Job) error {
	raw, err := j.encode()
	if err != nil {
		return err
	}
	b.now()
	b.items = append(b.items, batchItem{shard: j.Shard(), kind: 'j', field: j.RecordField(), payload: raw, id: j.ID, to: j.To, camp: j.Campaign})
	return nil
}

// event is the event of it: a job's queued event is made now (a part
// written as a run of events needs none).
func (b *Batch) event(it *batchItem) string {
	if it.event != "" {
		return it.event
	}
	return events.Event{Type: events.Queued, Time: b.now(), Campaign: it.camp, Job: it.id, Recipient: it.to}.Encode()
}

// now is the time of the batch's events: read once a batch, not per job.
func (b *Batch) now() time.Time {
	if b.at.IsZero() {
		b.at = time.Now()
	}
	return b.at
}

// AddFinal records a recipient that is settled without sending (suppressed
// at launch) so it is counted but never queued.
func (b *Batch) AddFinal(j *Job, rec Record) {
	b.items = append(b.items, batchItem{shard: j.Shard(), kind: 's', field: j.RecordField(), payload: rec.Encode(),
		event: jobEvent(events.Suppressed, j, rec, b.now()), id: j.ID, to: j.To, camp: j.Campaign})
}

// AddNew is Add for a job whose address the campaign cannot have yet,
// as the caller knows (a launch's filter of the addresses read before
// this row, with Since guarding against another launch): the script
// does not look its record up, about an eighth of redis-server's work
// per row.
func (b *Batch) AddNew(j *Job) error {
	if err := b.Add(j); err != nil {
		return err
	}
	b.items[len(b.items)-1].fresh = true
	return nil
}

// Grow makes room for n more items, so a batch whose size is known is
// not grown by doubling.
func (b *Batch) Grow(n int) { b.items = slices.Grow(b.items, n) }

// Len is the number of items in the batch.
func (b *Batch) Len() int { return len(b.items) }

// BatchResult counts what an enqueue did.
type BatchResult struct{ Added, Final, Duplicates int }

// Enqueue writes b, atomically per shard, and resets it for reuse.
func (q *Queue) Enqueue(ctx context.Context, b *Batch) (BatchResult, error) {
	res, _, err := q.EnqueueDuplicates(ctx, b)
	return res, err
}

// EnqueueDuplicates is Enqueue that also returns the positions (from 0,
// in the order added) of the batch's duplicates: recipients whose
// address the campaign already had, from an earlier row or batch.
//
// Each shard's part is one script that also moves that shard's
// checkpoint: a launch interrupted midway has, per shard, every row up to
// its checkpoint and none after (see the launcher's resume). The shards'
// scripts go in one pipelined round trip; a shard's batches reach it in
// the order they are enqueued as long as the caller waits for each.
func (q *Queue) EnqueueDuplicates(ctx context.Context, b *Batch) (BatchResult, []int, error) {
	due := int64(0)
	if !b.Due.IsZero() {
		due = b.Due.UnixMilli()
	}
	var parts [keyspace.Shards][]int // positions in b.items, per shard
	for i, it := range b.items {
		parts[it.shard] = append(parts[it.shard], i)
	}
	packed := b.Pack > 1 && due == 0
	var calls []txCall
	var callPos, callOwn [][]int // per call: its items, its own duplicates left out
	var callShard []int
	var out BatchResult
	var at []int
	queued := Record{Status: string(outcome.Queued)}.Encode()
	for shard, pos := range parts {
		if len(pos) == 0 {
			continue
		}
		// The part's own duplicates (an address twice in it) are left
		// out here, the first kept: the script finds only those of
		// earlier batches.
		seen := make(map[string]struct{}, len(pos))
		kept := pos[:0] // in place: kept never passes the one read
		var own []int
		for _, i := range pos {
			if _, dup := seen[b.items[i].field]; dup {
				own = append(own, i)
				continue
			}
			seen[b.items[i].field] = struct{}{}
			kept = append(kept, i)
		}
		given := len(own)
		pos = kept
		t := b.Tally.In(shard)
		kinds := make([]byte, len(pos))
		var look []byte
		run := b.Runs && packed
		for k, i := range pos {
			it := &b.items[i]
			kinds[k] = it.kind
			if !it.fresh {
				if len(look) > 0 {
					look = append(look, ',')
				}
				look = strconv.AppendInt(look, int64(k+1), 10)
			}
			run = run && it.kind == 'j' && it.camp == b.items[pos[0]].camp
		}
		run = run && len(look) == 0
		// The events, as one JSON array, with their lengths; or as a run.
		var evs strings.Builder
		var lens []byte
		if !run {
			part := make([]string, len(pos))
			size := len(pos) + 2
			for k, i := range pos {
				part[k] = b.event(&b.items[i])
				size += len(part[k])
			}
			evs.Grow(size) // once: grown by doubling it was a quarter of a launch's allocations
			evs.WriteByte('[')
			lens = make([]byte, 0, 4*len(pos))
			for k, ev := range part {
				if k > 0 {
					evs.WriteByte(',')
					lens = append(lens, ',')
				}
				evs.WriteString(ev)
				lens = strconv.AppendInt(lens, int64(len(ev)), 10)
			}
			evs.WriteByte(']')
		}
		keys := []string{q.Stream(shard, b.Lane), t.Counters, t.Records, q.Delayed(shard, b.Lane), q.EventsKey(shard), q.packs(shard, b.Lane)}
		var call txCall
		if packed && len(look) == 0 {
			ev := streamAdd{keys[4], events.BatchField, evs.String()}
			switch {
			case run:
				ev = b.runEntry(keys[4], pos)
			case len(pos) == 1:
				ev = streamAdd{keys[4], events.Field, b.event(&b.items[pos[0]])}
			}
			call = freshCall(b, pos, keys, b.Since[shard], given, queued, ev)
		} else {
			const f0 = 11
			args := make([]any, f0+2*len(pos))
			for k, i := range pos {
				it := &b.items[i]
				args[f0+k], args[f0+len(pos)+k] = it.field, it.payload
				if packed && it.kind == 'j' {
					args[f0+len(pos)+k] = ""
				}
			}
			packs := 0
			if packed {
				for _, p := range packsOf(b.items, pos, b.Pack) {
					args = append(args, p)
					packs++
				}
			}
			args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7] = b.Checkpoint, queued, due, b.Tally.CheckpointField, string(kinds), evs.String(), string(lens), given
			args[8], args[9], args[10] = b.Since[shard], string(look), packs
			call = txCall{call: scriptCall{keys: keys, args: args}}
		}
		calls = append(calls, call)
		callPos = append(callPos, pos)
		callShard = append(callShard, shard)
		callOwn = append(callOwn, own)
	}
	var first error
	for c, cmd := range q.runEnqueue(ctx, calls) {
		res, err := cmd.Int64Slice()
		if err != nil {
			if first == nil {
				if at, moved := strings.CutPrefix(err.Error(), "MOVED_CHECKPOINT "); moved {
					err = fmt.Errorf("%w (shard %d at line %s, not %d)", ErrCheckpointMoved, callShard[c], at, b.Since[callShard[c]])
				}
				first = fmt.Errorf("enqueue batch at %s: %w", b.Checkpoint, err)
			}
			continue
		}
		if cp, err := strconv.Atoi(b.Checkpoint); err == nil {
			b.Since[callShard[c]] = cp
		}
		out.Added += int(res[0])
		out.Final += int(res[1])
		out.Duplicates += int(res[2]) + len(callOwn[c])
		at = append(at, callOwn[c]...)
		for _, i := range res[3:] {
			at = append(at, callPos[c][i])
		}
	}
	switch { // the shards written to are rung for even when another failed
	case out.Added > 0 && due > 0:
		q.ringDelayed(ctx, b.Lane)
	case out.Added > 0:
		q.ring(ctx, b.Lane)
	}
	if first != nil {
		return out, at, first
	}
	b.items, b.at = b.items[:0], time.Time{}
	slices.Sort(at)
	return out, at, nil
}

// AddOne queues a single job without a campaign (API, submission): its
// record and counters are written in the same step.
func (q *Queue) AddOne(ctx context.Context, j *Job, t Tally) error {
	b := &Batch{Lane: j.Lane, Tally: t}
	if err := b.Add(j); err != nil {
		return err
	}
	res, err := q.Enqueue(ctx, b)
	if err != nil {
		return err
	}
	if res.Added != 1 {
		return fmt.Errorf("enqueue %s: job id already used", j.ID)
	}
	return nil
}
