package suppression

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Upsert results.
const (
	resAdded     = 0 // no entry before
	resChanged   = 1 // reason, scope, details or first_seen changed
	resRefreshed = 2 // only last_seen moved: not worth an audit event
	resSame      = 3 // nothing changed (an idempotent re-import)
)

// upsertScript merges new entries into the stored ones atomically, so
// that concurrent engines, one-click requests and imports never lose an
// update. The wider scope wins and keeps its reason and details (an
// unsubscribe arriving for a hard-bounced address must not narrow it to
// marketing); at equal scope the newer event's details win. first_seen is
// the minimum, last_seen the maximum, which makes re-applying any entry a
// no-op. One call takes many entries: the per-call cost of a script is
// about twice that of the work, so batching more than doubles throughput.
//
// KEYS: hash, audit stream. ARGV: audit cap, then per entry: field, value,
// actor, why, campaign. Returns one result (resAdded...) per entry.
var upsertScript = redis.NewScript(`
local pat = '^1\31(%a)\31(%d+)\31(%d+)\31(.*)$'
local out = {}
for i = 2, #ARGV, 5 do
  local field, new = ARGV[i], ARGV[i+1]
  local ns, nf, nl, nrest = string.match(new, pat)
  if not ns then return redis.error_reply('ERR suppression: bad entry encoding') end
  local old = redis.call('HGET', KEYS[1], field)
  local merged, op, res = new, 'add', 0
  if old then
    local osc, of, ol, orest = string.match(old, pat)
    if not osc then return redis.error_reply('ERR suppression: stored entry of ' .. field .. ' has an unknown encoding') end
    local scope, rest = ns, nrest
    if osc == 'g' and ns ~= 'g' then scope, rest = osc, orest end
    local first, last = of, ol
    if tonumber(nf) < tonumber(of) then first = nf end
    if tonumber(nl) > tonumber(ol) then last = nl end
    local head = '1\31' .. scope .. '\31' .. first .. '\31'
    merged = head .. last .. '\31' .. rest
    if merged == old then
      op, res = nil, 3
    elseif head .. ol .. '\31' .. rest == old then
      op, res = nil, 2
    else
      op, res = 'update', 1
    end
  end
  if res ~= 3 then redis.call('HSET', KEYS[1], field, merged) end
  if op then
    local ms, mr = string.match(merged, '^1\31(%a)\31%d+\31%d+\31(%a)')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'a', field, 'e', op .. '\31' .. mr .. '\31' .. ms .. '\31' .. ARGV[i+2] .. '\31' .. ARGV[i+4] .. '\31' .. ARGV[i+3])
  end
  out[#out+1] = res
end
return out
`)

// removeScript deletes entries and records who did it, atomically.
//
// KEYS: hash, audit stream. ARGV: audit cap, actor, why, fields...
// Returns how many existed.
var removeScript = redis.NewScript(`
local n = 0
for i = 4, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    redis.call('HDEL', KEYS[1], ARGV[i])
    local s, r = string.match(old, '^%d+\31(%a)\31%d+\31%d+\31(%a)')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'a', ARGV[i], 'e', 'remove\31' .. (r or '') .. '\31' .. (s or '') .. '\31' .. ARGV[2] .. '\31\31' .. ARGV[3])
    n = n + 1
  end
end
return n
`)

// softScript counts one soft bounce of an address: a small hash {f: first
// bounce (unix ms), n: count} that expires after the idle time, so a streak
// broken by a long quiet spell starts over.
//
// KEYS: counter. ARGV: now ms, idle ms. Returns {count, first ms}.
var softScript = redis.NewScript(`
local first = redis.call('HGET', KEYS[1], 'f')
if not first then
  first = ARGV[1]
  redis.call('HSET', KEYS[1], 'f', first)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {n, tonumber(first)}
`)

type scriptCall struct {
	keys []string
	args []any
}

// evalMany runs calls of s in one pipeline. EVALSHA keeps the script body
// off the wire; commands that meet a server without the script (restart,
// failover, SCRIPT FLUSH) are retried once after loading it, and only those,
// so results stay exact.
func (l *List) evalMany(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range todo {
				cmds[i] = s.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
		var again []int
		for _, i := range todo {
			if err := cmds[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return cmds, nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("script still missing after loading: %w", cmds[again[0]].Err())
		}
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return nil, fmt.Errorf("load script: %w", err)
		}
		todo = again
	}
}
