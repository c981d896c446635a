-- One throttle step for one key, shared by every engine (see step.go for
-- the argument list and adapt.go for the law). It records the calling
-- engine's report, applies an event (a provider deferral or a connection
-- refusal) and matched response rules, moves the adaptive rate, and leases
-- up to `want` send slots from the key's GCRA.
--
-- Times are milliseconds. Numbers that must keep their fractions are
-- returned as strings (Redis truncates Lua numbers to integers), but for
-- the leased slots: integer microseconds from now (formatting one string
-- per slot was 6% of redis-server's instructions per delivered message).
local st, eng = KEYS[1], KEYS[2]
local i = 0
local function arg() i = i + 1; return ARGV[i] end
local function num() return tonumber(arg()) end

local now = num()
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id, name = arg(), arg()
local start, minr, maxr, burst = num(), num(), num(), num()
local startc, minc, maxc = num(), num(), num()
local window, share = num(), num()
local acc, inuse, starved, txact, lat, open, hold, want = num(), num(), num(), num(), num(), num(), num(), num()
local dok, ddef, dbnc, dfail = num(), num(), num(), num()
local ev, evtext = arg(), arg()
local lane, want, horizon = arg(), num(), num()
-- Tuning (documented in adapt.go).
local BETA, BLIND, CUBE, USED = num(), num(), num(), num()
local CONC_UP, LIVE, TXIDLE, TTL = num(), num(), num(), num()
local nrules = num()

local f = redis.call('HMGET', st, 'r', 'r0', 'w', 'tau', 'tupd', 'tdec', 'conc', 'tc',
  'tat', 'tatm', 'txseen', 'susp', 'capr', 'capc', 'capu', 'ovr', 'ovc', 'ovu', 'tcd', 'tatt')
local r = tonumber(f[1]) or start
local r0 = tonumber(f[2]) or r
local w = tonumber(f[3]) or r
local tau = tonumber(f[4]) or 0
local tupd = tonumber(f[5]) or now
local tdec = tonumber(f[6]) or 0
local conc = tonumber(f[7]) or startc
local tc = tonumber(f[8]) or now
local tat = tonumber(f[9]) or 0
local tatm = tonumber(f[10]) or 0
local txseen = tonumber(f[11]) or 0
local susp = tonumber(f[12]) or 0
local capr, capc, capu = tonumber(f[13]), tonumber(f[14]), tonumber(f[15]) or 0
local ovr, ovc, ovu = tonumber(f[16]), tonumber(f[17]), tonumber(f[18]) or 0
local tcd = tonumber(f[19]) or 0 -- last cut for a refused session
local tatt = tonumber(f[20]) or 0

-- Expired overrides and caps.
if (ovr or ovc) and ovu > 0 and ovu <= now then
  redis.call('HDEL', st, 'ovr', 'ovc', 'ovu')
  ovr, ovc = nil, nil
end
if capu <= now and (capr or capc) then
  redis.call('HDEL', st, 'capr', 'capc', 'capu', 'cwhy')
  capr, capc, capu = nil, nil, 0
end
local pinned = (ovr ~= nil) or (ovc ~= nil)
local capped = capu > now

-- The engines working this key: their reports add up. Each report is
-- "seen inuse acc starved open held want": held is the connection slots
-- the engine holds (its lease, renewed by every step of it; see
-- sessions.go), want the attempts it had at once lately. This engine's
-- is written at the end, with what it holds now.
local asum, nvalid, usum, anystarved, ids = 0, 0, 0, false, {}
local others, ostarved, dem = 0, false, {}
local BIG = 1e9
local all = redis.call('HGETALL', eng)
for k = 1, #all, 2 do
  local f = {}
  for x in string.gmatch(all[k + 1], '%S+') do f[#f + 1] = x end
  local seen = tonumber(f[1])
  if all[k] == id then
    -- replaced below
  elseif seen == nil or #f < 4 or seen < now - LIVE then
    redis.call('HDEL', eng, all[k])
  else
    ids[#ids + 1] = all[k]
    local u, a = tonumber(f[2]), tonumber(f[3])
    usum = usum + u
    if a >= 0 then asum, nvalid = asum + a, nvalid + 1 end
    others = others + (tonumber(f[6]) or u)
    dem[all[k]] = tonumber(f[7]) or u
    if f[4] == '1' then anystarved, ostarved, dem[all[k]] = true, true, BIG end
  end
end
if id ~= '' then
  ids[#ids + 1] = id
  usum = usum + inuse
  if acc >= 0 then asum, nvalid = asum + acc, nvalid + 1 end
  dem[id] = want
  if starved == 1 then anystarved, dem[id] = true, BIG end
end
-- An engine that joined too recently to measure is assumed to take
-- what the others do (they read one queue).
local avalid = nvalid > 0
if avalid and nvalid < #ids then asum = asum * #ids / nvalid end

-- Decrease: a provider deferral, at most once per reaction window.
local decreased = false
if ev == 'rate' and not pinned and now - tdec >= window then
  if avalid and asum > 0 then
    -- Never more than halve at once (TCP's bound): what was accepted
    -- may have been held down by something else, e.g. sessions.
    w = math.min(asum, r)
    r0 = math.max(w * BETA, r * BLIND)
  else
    w = r
    r0 = r * BLIND
  end
  r0 = math.max(minr, r0)
  r, tau, tdec, decreased = r0, 0, now, true
  -- One connection fewer, but not below what the new rate needs with
  -- headroom (Little's law: rate x time per attempt).
  local need = math.max(math.ceil(1.5 * r0 * lat) + 1, #ids)
  conc = math.max(minc, conc - 1, math.min(conc, need))
  tc = now
end
-- A refused session takes one connection away, at most once per
-- CONC_UP: the engines close their sessions past the new limit within a
-- step or two, so refusals in between are echoes of the old one. It
-- never goes below one per live engine, so each keeps a session.
if ev == 'conn' and not pinned and now - tcd >= math.max(window, CONC_UP) then
  conc = math.max(minc, math.min(#ids, maxc), conc - 1)
  tc, tcd = now, now
end

local effr = r
if capped and capr then effr = math.min(effr, capr) end
if ovr then effr = ovr end
local effc = conc
if capped and capc then effc = math.min(effc, capc) end
if ovc then effc = ovc end

-- Response rules matched by this reply.
for _ = 1, nrules do
  local rname, action, dur, count, within = arg(), arg(), num(), num(), num()
  local crate, cfac, cconn, ccfac = num(), num(), num(), num()
  local fld = 'rule:' .. rname
  local keep = {}
  for ts in string.gmatch(redis.call('HGET', st, fld) or '', '%d+') do
    if tonumber(ts) > now - within then keep[#keep + 1] = ts end
  end
  keep[#keep + 1] = string.format('%d', now)
  while #keep > count do table.remove(keep, 1) end
  redis.call('HSET', st, fld, table.concat(keep, ' '))
  if #keep >= count then
    redis.call('HINCRBY', st, 'fired:' .. rname, 1)
    if action == 'suspend' then
      if now + dur > susp then susp = now + dur end
      redis.call('HSET', st, 'swhy', rname)
    elseif action == 'cap' then
      if not capped then
        local cr, cc
        if crate > 0 then cr = crate end
        if cfac > 0 and (cr == nil or cfac * effr < cr) then cr = cfac * effr end
        if cconn > 0 then cc = cconn end
        if ccfac > 0 and (cc == nil or ccfac * effc < cc) then cc = ccfac * effc end
        if cr then capr = math.max(minr, cr) end
        if cc then capc = math.max(minc, math.floor(cc)) end
        if capr and not pinned and r > capr then
          -- Resume from the cap, not from the old rate, when it ends.
          r, r0, tau = capr, capr, 0
          if w < r then w = r end
        end
        capped = true
      end
      capu = math.max(capu, now + dur)
      redis.call('HSET', st, 'cwhy', rname)
      if capr then effr = math.min(effr, capr) end
      if capc then effc = math.min(effc, capc) end
      if ovr then effr = ovr end
      if ovc then effc = ovc end
    end
  end
end

-- Increase: the probe clock runs only while the rate is really used and
-- nothing pins or caps it; the rate follows a cubic of it (adapt.go).
local dt = math.min(math.max(now - tupd, 0), 1000)
tupd = now
if not decreased and not pinned and not capped and avalid and asum >= USED * r then
  tau = tau + dt / 1000
end
if not decreased and not pinned then
  if w < r0 then w = r0 end
  local c = CUBE * w
  local x = tau - ((w - r0) / c) ^ (1 / 3)
  r = w + c * x * x * x
end
r = math.min(math.max(r, minr), maxr)
if not pinned and anystarved and conc < maxc and now - tc >= CONC_UP then
  conc, tc = conc + 1, now
end
conc = math.min(math.max(conc, minc), maxc)
if not pinned then
  effr = r
  if capped and capr then effr = math.min(effr, capr) end
  effc = conc
  if capped and capc then effc = math.min(effc, capc) end
end

-- The connection slots this engine may dial into (mine): what the others
-- hold leaves free. While another engine was refused a connection, or
-- the engines hold more than the limit (it was cut), no more than its
-- fair share, and it keeps no more sessions than that (keep; sessions
-- past it close, idle ones at once, busy ones as they finish): a max-min
-- fair split of the limit by what each engine used lately (a refused
-- one wants all it can get), the remainder of an even split rotating
-- every 10 s. It holds at least the sessions it has open, and holds fewer
-- once it reports them closed.
table.sort(ids)
local n = #ids
local mine = math.max(effc - others, 0)
local keep = mine
if ostarved or others + open > effc then
  local left, rem, fair = {}, effc, nil
  for k = 1, n do left[k] = ids[k] end
  while fair == nil do
    local level, kept = math.floor(rem / #left), {}
    for _, e in ipairs(left) do
      if dem[e] <= level then
        rem = rem - dem[e]
        if e == id then fair = dem[e] end
      else
        kept[#kept + 1] = e
      end
    end
    if #kept == #left then
      local rot = math.floor(now / 10000) % #kept
      for p, e in ipairs(kept) do
        if e == id then
          fair = level
          if (p - 1 - rot) % #kept < rem - level * #kept then fair = level + 1 end
        end
      end
      break
    end
    left = kept
    if #left == 0 then break end
  end
  fair = fair or 0
  mine, keep = math.min(mine, fair), math.max(fair, 0)
end
if id ~= '' then
  redis.call('HSET', eng, id, string.format('%d %d %s %d %d %d %d', now, inuse, tostring(acc), starved,
    open, math.max(hold, open, mine), want))
  redis.call('PEXPIRE', eng, 60000)
end

-- Lease send slots from the GCRA (KumoMTA's throttles are GCRA too).
-- While the transactional lane is active, a marketing slot also passes a
-- GCRA at (1-share) of the rate, and a transactional slot within the
-- lane's own share (a GCRA at share of the rate) is granted at once, ahead
-- of marketing slots already leased: that share is never behind
-- marketing. Beyond its share the lane queues with marketing.
if lane == 't' or txact == 1 then txseen = now end
local slots, nextat = {}, ''
if want > 0 then
  if susp > now then
    nextat = string.format('%d', susp - now)
  else
    local T = 1000 / effr
    local tol = (burst - 1) * T
    local mk = lane == 'm' and share > 0 and now - txseen < TXIDLE
    local tx = lane == 't' and share > 0
    local Tm, Tt = T / (1 - share), T / math.max(share, 1e-9)
    local tolm, tolt = (burst - 1) * Tm, (burst - 1) * Tt
    for _ = 1, want do
      local s = math.max(now, tat - tol)
      if mk then s = math.max(s, tatm - tolm) end
      if tx and tatt - tolt <= now then s = now end
      if s > now + horizon then
        nextat = string.format('%.3f', s - now)
        break
      end
      tat = math.max(tat, s) + T
      if mk then tatm = math.max(tatm, s) + Tm end
      if tx then tatt = math.max(tatt, s) + Tt end
      slots[#slots + 1] = math.floor((s - now) * 1000) -- µs: an integer reply, no string.format per slot
    end
  end
end

redis.call('HSET', st, 'r', r, 'r0', r0, 'w', w, 'tau', tau, 'tupd', tupd, 'tdec', tdec,
  'conc', conc, 'tc', tc, 'tcd', tcd, 'tat', tat, 'tatm', tatm, 'tatt', tatt, 'txseen', txseen, 'susp', susp,
  'cfg', string.format('%s %s %d %d', tostring(minr), tostring(maxr), minc, maxc))
if capped then
  redis.call('HSET', st, 'capu', capu)
  if capr then redis.call('HSET', st, 'capr', capr) end
  if capc then redis.call('HSET', st, 'capc', capc) end
end
if dok > 0 then redis.call('HINCRBY', st, 'n_ok', dok) end
if ddef > 0 then redis.call('HINCRBY', st, 'n_def', ddef) end
if dbnc > 0 then redis.call('HINCRBY', st, 'n_bounce', dbnc) end
if dfail > 0 then redis.call('HINCRBY', st, 'n_fail', dfail) end
if evtext ~= '' then
  redis.call('HSET', st, 'lt', evtext, 'la', string.format('%d', now))
end
if decreased then redis.call('HINCRBY', st, 'n_dec', 1) end
redis.call('PEXPIRE', st, TTL)

local state = 'normal'
if susp > now then state = 'suspended'
elseif pinned then state = 'pinned'
elseif capped then state = 'capped'
elseif tdec > 0 and now - tdec < 30000 then state = 'backoff' end

local out = {string.format('%.4f', effr), effc, mine,
  string.format('%d', math.max(susp - now, 0)), state, nextat, n, keep}
for k = 1, #slots do out[#out + 1] = slots[k] end
return out
