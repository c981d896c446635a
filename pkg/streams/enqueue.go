package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// enqueueScript adds a batch of a campaign atomically: each recipient is
// claimed in the records hash first (HSETNX), so an address already present
// (a duplicate row, or a batch re-sent after an interrupted launch) is
// never queued twice; then the launch checkpoint (in the counters hash,
// at the field the tally names) moves past the batch. It returns the
// counts, then the 0-based positions in the batch of the duplicates.
var enqueueScript = redis.NewScript(luaEvent + `
local added, supp, dup = 0, 0, 0
local dups = {}
for i = 5, #ARGV, 4 do
  local kind, field, payload, ev = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]
  if kind == 'j' then
    if redis.call('HSETNX', KEYS[3], field, ARGV[2]) == 1 then
      if ARGV[3] == '0' then
        redis.call('XADD', KEYS[1], '*', 'j', payload)
      else
        redis.call('ZADD', KEYS[4], ARGV[3], payload)
      end
      added = added + 1
      event(KEYS[5], ev)
    else
      dup = dup + 1
      dups[#dups + 1] = (i - 5) / 4
    end
  else
    if redis.call('HSETNX', KEYS[3], field, payload) == 1 then
      supp = supp + 1
      event(KEYS[5], ev)
    else
      dup = dup + 1
      dups[#dups + 1] = (i - 5) / 4
    end
  end
end
if added + supp > 0 then redis.call('HINCRBY', KEYS[2], 'total', added + supp) end
if added > 0 then redis.call('HINCRBY', KEYS[2], 'queued', added) end
if supp > 0 then redis.call('HINCRBY', KEYS[2], 'suppressed', supp) end
if dup > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', dup) end
if ARGV[1] ~= '' and ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[1]) end
local out = {added, supp, dup}
for _, d in ipairs(dups) do out[#out + 1] = d end
return out
`)

// Batch is a group of jobs enqueued in one atomic step.
type Batch struct {
	Lane       Lane
	Tally      Tally
	Checkpoint string // recorded at Tally.CheckpointField with the batch; "" for none
	// Due, when set, holds the jobs in the lane's delayed set until then
	// (a scheduled campaign) instead of streaming them now.
	Due   time.Time
	items []any
}

// Add queues a job in the batch.
func (b *Batch) Add(j *Job) error {
	raw, err := j.encode()
	if err != nil {
		return err
	}
	b.items = append(b.items, "j", j.RecordField(), raw, jobEvent(events.Queued, j, Record{}))
	return nil
}

// AddFinal records a recipient that is settled without sending (suppressed
// at launch) so it is counted but never queued.
func (b *Batch) AddFinal(j *Job, rec Record) {
	b.items = append(b.items, "s", j.RecordField(), rec.Encode(), jobEvent(events.Suppressed, j, rec))
}

// Len is the number of items in the batch.
func (b *Batch) Len() int { return len(b.items) / 4 }

// BatchResult counts what an enqueue did.
type BatchResult struct{ Added, Final, Duplicates int }

// Enqueue writes b atomically and resets it for reuse.
func (q *Queue) Enqueue(ctx context.Context, b *Batch) (BatchResult, error) {
	res, _, err := q.EnqueueDuplicates(ctx, b)
	return res, err
}

// EnqueueDuplicates is Enqueue that also returns the positions (from 0,
// in the order added) of the batch's duplicates: recipients whose
// address the campaign already had, from an earlier row or batch.
func (q *Queue) EnqueueDuplicates(ctx context.Context, b *Batch) (BatchResult, []int, error) {
	due := int64(0)
	if !b.Due.IsZero() {
		due = b.Due.UnixMilli()
	}
	args := append([]any{b.Checkpoint, Record{Status: string(outcome.Queued)}.Encode(), due, b.Tally.CheckpointField}, b.items...)
	res, err := q.runReplicated(ctx, enqueueScript, []string{q.Stream(b.Lane), b.Tally.Counters, b.Tally.Records, q.Delayed(b.Lane), q.EventsKey()}, args...).Int64Slice()
	if err != nil {
		return BatchResult{}, nil, fmt.Errorf("enqueue batch at %s: %w", b.Checkpoint, err)
	}
	b.items = b.items[:0]
	var at []int
	for _, i := range res[3:] {
		at = append(at, int(i))
	}
	return BatchResult{Added: int(res[0]), Final: int(res[1]), Duplicates: int(res[2])}, at, nil
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
