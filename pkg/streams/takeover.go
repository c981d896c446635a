package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Engines is the key of the heartbeat hash: consumer name → last sign of
// life (Redis TIME, unix ms). Every engine writes its own field; a job is
// only taken over from a consumer whose field has gone stale.
func (q *Queue) Engines() string { return q.ks.Key("engines") }

var beatScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
return 1
`)

// Beat records that this consumer is alive, in Redis's clock (engines'
// clocks may disagree; Redis's is the one all of them compare against).
func (q *Queue) Beat(ctx context.Context) error {
	if err := beatScript.Run(ctx, q.rdb, []string{q.Engines()}, q.consumer).Err(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Holder is a consumer of a lane's group with jobs pending.
type Holder struct {
	Name    string
	Pending int64
}

// Holders lists the other consumers of lane l that hold jobs.
func (q *Queue) Holders(ctx context.Context, l Lane) ([]Holder, error) {
	cs, err := q.rdb.XInfoConsumers(ctx, q.Stream(l), Group).Result()
	if err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", l, err)
	}
	var out []Holder
	for _, c := range cs {
		if c.Name != q.consumer && c.Pending > 0 {
			out = append(out, Holder{Name: c.Name, Pending: c.Pending})
		}
	}
	return out, nil
}

// takeOverScript moves up to ARGV[4] jobs from a silent consumer (ARGV[2])
// to this one (ARGV[3]), but only while that consumer's heartbeat is older
// than ARGV[5] ms — checked in the same atomic step, so an engine that
// comes back to life keeps its jobs. A consumer without a heartbeat (an
// engine of an older version) counts as silent when its jobs have been
// idle that long. When the silent consumer holds nothing more it is
// removed from the group and from the heartbeat hash.
// Returns the number of jobs moved, or -1 when the consumer is alive.
var takeOverScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local silence = tonumber(ARGV[5])
local beat = redis.call('HGET', KEYS[2], ARGV[2])
local minIdle = 0
if beat then
  if now - tonumber(beat) < silence then return -1 end
else
  minIdle = silence
end
local ps = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', minIdle, '-', '+', tonumber(ARGV[4]), ARGV[2])
local ids = {}
for i, p in ipairs(ps) do ids[i] = p[1] end
if #ids > 0 then
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0}
  for _, id in ipairs(ids) do args[#args + 1] = id end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
if #ids < tonumber(ARGV[4]) and #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  if beat then redis.call('HDEL', KEYS[2], ARGV[2]) end
end
return #ids
`)

// TakeOver moves every job of lane l held by consumer from to this one,
// provided from has shown no sign of life for silence. It returns how many
// jobs moved, and alive true when from is not silent (nothing moved). The
// jobs land in this consumer's pending list: read them with ReadPending.
func (q *Queue) TakeOver(ctx context.Context, l Lane, from string, silence time.Duration) (moved int, alive bool, err error) {
	const batch = 500
	for {
		n, err := takeOverScript.Run(ctx, q.rdb, []string{q.Stream(l), q.Engines()},
			Group, from, q.consumer, batch, silence.Milliseconds()).Int()
		if err != nil {
			return moved, false, fmt.Errorf("take over %s's jobs in %s: %w", from, l, err)
		}
		if n < 0 {
			return moved, true, nil
		}
		moved += n
		if n < batch {
			return moved, false, nil
		}
	}
}
