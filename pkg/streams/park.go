package streams

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// parkScript moves a held job into a parking list (a paused campaign's):
// no attempt is counted, and nothing cycles through Redis while it waits.
var parkScript = redis.NewScript(releaseHeld + `
redis.call('RPUSH', KEYS[2], ARGV[4])
return 1
`)

// Park moves a held job to the list at key until Unpark or CancelParked.
func (q *Queue) Park(ctx context.Context, d Delivery, key string) (bool, error) {
	if err := alone(d); err != nil {
		return false, err
	}
	n, err := parkScript.Run(ctx, q.rdb, []string{q.held(d), key}, Group, d.StreamID, q.consumer, d.Raw).Int()
	if err != nil {
		return false, fmt.Errorf("park %s: %w", d.ID, err)
	}
	return n == 1, nil
}

var unparkScript = redis.NewScript(`
local n = 0
for i = 1, tonumber(ARGV[1]) do
  local j = redis.call('LPOP', KEYS[1])
  if not j then break end
  redis.call('XADD', KEYS[2], '*', 'j', j)
  n = n + 1
end
return n
`)

// Unpark moves up to n parked jobs from key (shard's parking list) back
// into lane's stream of that shard and returns how many moved; call until
// it returns 0.
func (q *Queue) Unpark(ctx context.Context, shard int, l Lane, key string, n int) (int, error) {
	moved, err := unparkScript.Run(ctx, q.rdb, []string{key, q.Stream(shard, l)}, n).Int()
	if err != nil {
		return 0, fmt.Errorf("unpark %s: %w", key, err)
	}
	if moved > 0 {
		q.ring(ctx, l)
	}
	return moved, nil
}

// luaCancelJob settles one raw campaign job as cancelled: its record
// (records hash KEYS[3], ARGV[2] the cancelled record) and the counters
// (KEYS[2]) move as a settle would (queued → cancelled), and its
// cancelled event goes to the events stream evkey (time at). It needs
// luaEvent and luaJobEvent before it.
const luaCancelJob = `
local function cancelJob(raw, evkey, at)
  local j = cjson.decode(raw)
  local field = string.lower(j['to'])
  local prev = redis.call('HGET', KEYS[3], field)
  local ps = ''
  if prev then ps = string.match(prev, '^{"s":"(%a+)"') or '' end
  if not final[ps] then
    redis.call('HSET', KEYS[3], field, ARGV[2])
    redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
    redis.call('HINCRBY', KEYS[2], 'queued', -1)
    if ps == 'deferred' then redis.call('HINCRBY', KEYS[2], 'deferred', -1) end
    job_event(evkey, 'cancelled', at, j, 'cancelled')
  end
end
`

// cancelParkedScript settles parked jobs as cancelled.
var cancelParkedScript = redis.NewScript(luaEvent + luaJobEvent + luaFinal + luaCancelJob + `
local n = 0
for i = 1, tonumber(ARGV[1]) do
  local raw = redis.call('LPOP', KEYS[1])
  if not raw then break end
  cancelJob(raw, KEYS[4], ARGV[3])
  n = n + 1
end
return n
`)

// CancelParked settles up to n parked campaign jobs from key (shard's
// parking list) as cancelled in t and returns how many it took; call until
// it returns 0.
func (q *Queue) CancelParked(ctx context.Context, shard int, key string, t Tally, n int) (int, error) {
	t = t.In(shard)
	done, err := cancelParkedScript.Run(ctx, q.rdb, []string{key, t.Counters, t.Records, q.EventsKey(shard)}, n,
		Record{Status: string(outcome.Cancelled), Reason: "cancelled"}.Encode(), eventTime()).Int()
	if err != nil {
		return 0, fmt.Errorf("cancel parked jobs in %s: %w", key, err)
	}
	return done, nil
}
