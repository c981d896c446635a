package streams

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// trimLag bounds the acknowledged entries a line or lane stream keeps
// while an older entry is still held (see luaLetGo).
const trimLag = 1000

// luaLetGo lets acknowledged entries of a stream go, and tells what is
// left in it.
//
// Deleting entries one by one (XDEL) makes redis-server walk each one's
// stream node from its start (about a tenth of its CPU per delivered
// message). letGo instead drops the acknowledged entries in front of the
// oldest one still held a whole node at a time (XTRIM MINID ~), which
// costs next to nothing. Entries acknowledged behind a held one stay until
// it goes; when more than trimLag of them would stay (an attempt stuck in
// a slow session), the entries are deleted one by one as before, so a
// stream never grows because of one held job.
//
// A stream's length thus counts acknowledged entries too: what waits and
// what is held come from the group (streamDepth), never from XLEN.
var luaLetGo = `
local trimLag = ` + strconv.Itoa(trimLag) + `
-- streamDepth is what stream k holds for group: entries held (read, not
-- acknowledged), entries not read yet, and the id read last (nil when
-- the stream or the group is missing). Redis 7 counts the unread entries
-- (lag); when it cannot tell (a deletion at or past the group's last
-- read, or Redis before 7.0), up to 100 are counted and the length minus
-- the held entries stands for more. Without the group, every entry is
-- unread.
local function streamDepth(k, group)
  local ok, gs = pcall(redis.call, 'XINFO', 'GROUPS', k)
  if not ok then return 0, 0, nil end
  for _, g in ipairs(gs) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == group then
      local unread = f['lag']
      if not unread then
        unread = #redis.call('XRANGE', k, '(' .. f['last-delivered-id'], '+', 'COUNT', 100)
        if unread == 100 then unread = math.max(100, redis.call('XLEN', k) - f['pending']) end
      end
      return f['pending'], unread, f['last-delivered-id']
    end
  end
  return 0, redis.call('XLEN', k), nil
end
-- letGo acknowledges ids of stream k (held in group) and lets them go.
local function letGo(k, group, ids)
  redis.call('XACK', k, group, unpack(ids))
  local held, unread, last = streamDepth(k, group)
  if last then
    local oldest = last
    if held > 0 then oldest = redis.call('XPENDING', k, group)[2] end
    redis.call('XTRIM', k, 'MINID', '~', oldest)
  end
  if not last or redis.call('XLEN', k) - held - unread > trimLag then
    -- the entry read last stays (a deletion there would leave Redis
    -- unable to count the unread entries: see streamDepth)
    local dels = {}
    for _, id in ipairs(ids) do
      if id ~= last then dels[#dels + 1] = id end
    end
    if #dels > 0 then redis.call('XDEL', k, unpack(dels)) end
  end
end
`

// depthScript is streamDepth for Go: {held, unread} of stream KEYS[1]
// in group ARGV[1] ({0, 0} when it is missing).
var depthScript = redis.NewScript(luaLetGo + `
local held, unread = streamDepth(KEYS[1], ARGV[1])
return {held, unread}
`)

// StreamDepth is what a line or lane stream holds for the engines' group.
type StreamDepth struct {
	Held, Unread int64
}

// streamDepths reads the depth of each stream: one pipelined round trip
// of XINFO GROUPS (Redis 7 counts the unread entries), then depthScript
// for the streams whose unread entries Redis could not count. A stream
// that cannot be read counts as empty.
func (q *Queue) streamDepths(ctx context.Context, keys []string) []StreamDepth {
	out := make([]StreamDepth, len(keys))
	pipe := q.rdb.Pipeline()
	infos := make([]*redis.XInfoGroupsCmd, len(keys))
	for i, k := range keys {
		infos[i] = pipe.XInfoGroups(ctx, k)
	}
	_, _ = pipe.Exec(ctx)
	var calls []scriptCall
	var at []int
	for i, c := range infos {
		gs, err := c.Result()
		if err != nil {
			continue // no such stream
		}
		known := false
		for _, g := range gs {
			if g.Name == Group && g.Lag >= 0 {
				out[i], known = StreamDepth{Held: g.Pending, Unread: g.Lag}, true
			}
		}
		if !known {
			calls = append(calls, scriptCall{keys: []string{keys[i]}, args: []any{Group}})
			at = append(at, i)
		}
	}
	for j, c := range runAll(ctx, q.rdb, depthScript, calls) {
		if v, err := c.Int64Slice(); err == nil && len(v) == 2 {
			out[at[j]] = StreamDepth{Held: v[0], Unread: v[1]}
		}
	}
	return out
}
