-- Takes up to n units of today's warmup cap for one (source, provider),
-- first judging the last active day and moving the ramp if the day has
-- changed. One call is atomic: engines sharing Redis never overrun a cap.
--
-- KEYS[1] state hash {p~warm:SOURCE:PROVIDER}:st (day, dnum, step, last verdict)
-- KEYS[2] today's counters {p~warm:SOURCE:PROVIDER}:day:TODAY
-- KEYS[3] the counters of the day the caller believes was last active
-- (one hash tag: one slot)
-- ARGV: today, today's day number, guessed day, guessed day number, n,
--       hour (0-23), schedule (comma-separated), max deferral rate,
--       max bounce rate, max complaint rate, hourly burst, counters' ttl
-- Returns {"again", day} when KEYS[3] is not the last active day's key;
-- else {"ok", granted, step, cap, sent today, hourly cap, sent this hour,
-- limit ("" | "day" | "hour"), last verdict, last judged day}. cap is -1
-- once the ramp is over (warm).
local today, tnum = ARGV[1], tonumber(ARGV[2])
local guess = ARGV[3]
local n, hour = tonumber(ARGV[5]), ARGV[6]
local sched = {}
for v in string.gmatch(ARGV[7], '[^,]+') do sched[#sched + 1] = tonumber(v) end
local maxD, maxB, maxC = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local burst, ttl = tonumber(ARGV[11]), tonumber(ARGV[12])

local st = redis.call('HMGET', KEYS[1], 'day', 'dnum', 'step', 'verdict', 'judged')
local day, dnum, step = st[1], tonumber(st[2]), tonumber(st[3]) or 0
local verdict, judged = st[4] or '', st[5] or ''
if not day then
  day, dnum = today, tnum
  redis.call('HSET', KEYS[1], 'day', day, 'dnum', dnum, 'step', 0)
elseif dnum < tnum then
  if day ~= guess then return {'again', day} end
  -- Judge the last active day: every day after it until today had no
  -- traffic (any would have moved the state), which proves nothing.
  local c = redis.call('HMGET', KEYS[3], 'att', 'dlv', 'dfr', 'bnc', 'cmp')
  local att, dlv = tonumber(c[1]) or 0, tonumber(c[2]) or 0
  local dfr, bnc, cmp = tonumber(c[3]) or 0, tonumber(c[4]) or 0, tonumber(c[5]) or 0
  local d, b, k = 0, 0, 0
  if att > 0 then d, b = dfr / att, bnc / att end
  if dlv > 0 then k = cmp / dlv elseif cmp > 0 then k = 1 end
  local move = 0
  if att == 0 then
    verdict = 'idle'
  elseif k > maxC or d > 2 * maxD or b > 2 * maxB then
    verdict, move = 'back', -1
  elseif d > maxD or b > maxB then
    verdict = 'hold'
  else
    verdict, move = 'healthy', 1
  end
  step = math.max(0, math.min(#sched, step + move))
  judged = day
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('HSET', KEYS[3], 'verdict', verdict)
  end
  day, dnum = today, tnum
  redis.call('HSET', KEYS[1], 'day', day, 'dnum', dnum, 'step', step, 'verdict', verdict, 'judged', judged)
end

local sent = tonumber(redis.call('HGET', KEYS[2], 'sent')) or 0
local hsent = tonumber(redis.call('HGET', KEYS[2], 'h' .. hour)) or 0
local cap = sched[step + 1]
if not cap then
  -- Past the last step: warm, no cap; count what went for the record.
  if n > 0 then
    redis.call('HINCRBY', KEYS[2], 'sent', n)
    redis.call('HINCRBY', KEYS[2], 'h' .. hour, n)
    redis.call('EXPIRE', KEYS[2], ttl)
  end
  return {'ok', n, step, -1, sent + n, -1, hsent + n, '', verdict, judged}
end
local hcap = math.max(1, math.ceil(cap * burst / 24))
local grant = math.max(0, math.min(n, cap - sent, hcap - hsent))
local limit = ''
if grant < n or n == 0 then
  if cap - sent <= grant then limit = 'day' elseif hcap - hsent <= grant then limit = 'hour' end
end
if grant > 0 then
  redis.call('HINCRBY', KEYS[2], 'sent', grant)
  redis.call('HINCRBY', KEYS[2], 'h' .. hour, grant)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {'ok', grant, step, cap, sent + grant, hcap, hsent + grant, limit, verdict, judged}
