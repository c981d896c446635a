package suppression

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditEvent is one recorded change of the list.
type AuditEvent struct {
	ID       string    // stream ID
	Time     time.Time // when Redis recorded it
	Address  string    // address or "@domain"
	Action   string    // "add", "update" or "remove"
	Reason   Reason    // the entry's reason after an add/update, before a remove
	Scope    Scope     // likewise
	Actor    string    // who: the entry's source, the importer, the remover
	Why      string    // the entry's detail, or the remover's reason
	Campaign string
}

// auditPage is how many stream events one filter call reads: under 2 ms of
// Redis time, so the engine is never held up for long.
const auditPage = 1000

// auditFilterScript reads one page of the audit stream and returns only the
// events of the wanted addresses, so a lookup moves kilobytes over the
// network instead of the whole stream.
//
// KEYS: stream. ARGV: start ID ("-" or "(id"), count, addresses...
// Returns {last ID read or "", events read, matching events}.
var auditFilterScript = redis.NewScript(`
local want = {}
for i = 3, #ARGV do want[ARGV[i]] = true end
local msgs = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, m in ipairs(msgs) do
  if want[m[2][2]] then out[#out+1] = m end
end
local last = ''
if #msgs > 0 then last = msgs[#msgs][1] end
return {last, #msgs, out}
`)

// Audit returns the retained events of addr, oldest first; for an address
// its domain's events are included, since they are part of why the
// address is (or was) suppressed (the two shards' events are ordered to
// the millisecond). The events of an entry are in its
// shard's stream, which holds that shard's history (capped, see
// WithAuditCap), so this reads all of one or two shards' streams, filtered
// inside Redis page by page: about 1.5 s per million events, an operator's
// question, not something for the sending path.
func (l *List) Audit(ctx context.Context, addr string) ([]AuditEvent, error) {
	f, err := Normalize(addr)
	if err != nil {
		return nil, fmt.Errorf("suppression: audit: %w", err)
	}
	// The address's shard first: events of one millisecond in two shards
	// keep that order.
	shards, fields := []int{shardOf(f)}, [][]any{{f}}
	if d := domainOf(f); d != f {
		if n := shardOf(d); n == shards[0] {
			fields[0] = append(fields[0], d)
		} else {
			shards, fields = append(shards, n), append(fields, []any{d})
		}
	}
	var out []AuditEvent
	for i, n := range shards {
		evs, err := l.auditShard(ctx, n, fields[i])
		if err != nil {
			return nil, fmt.Errorf("suppression: audit %s: %w", f, err)
		}
		out = append(out, evs...)
	}
	sortAudit(out)
	return out, nil
}

// auditShard reads shard n's audit stream for the events of fields.
func (l *List) auditShard(ctx context.Context, n int, fields []any) ([]AuditEvent, error) {
	var out []AuditEvent
	start := "-"
	for {
		args := append([]any{start, auditPage}, fields...)
		res, err := auditFilterScript.Run(ctx, l.rdb, []string{l.auditKey(n)}, args...).Slice()
		if err != nil {
			return nil, err
		}
		if len(res) != 3 {
			return nil, fmt.Errorf("unexpected reply %v", res)
		}
		last, _ := res[0].(string)
		read, _ := res[1].(int64)
		msgs, _ := res[2].([]any)
		for _, m := range msgs {
			ev, err := parseAuditReply(m)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		if read < auditPage {
			return out, nil
		}
		start = "(" + last
	}
}

// parseAuditReply reads one stream entry as a script returns it:
// {id, {field, value, ...}}.
func parseAuditReply(m any) (AuditEvent, error) {
	pair, ok := m.([]any)
	if !ok || len(pair) != 2 {
		return AuditEvent{}, fmt.Errorf("bad stream entry %v", m)
	}
	id, _ := pair[0].(string)
	kv, _ := pair[1].([]any)
	vals := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		vals[k] = kv[i+1]
	}
	return auditEvent(redis.XMessage{ID: id, Values: vals}), nil
}

// An audit event is two stream fields: "a", the address (first, so the
// filter script finds it at a fixed place), and "e", the rest packed like
// an entry: action US reason US scope US actor US campaign US why. Two
// fields instead of seven make reading the stream about twice as fast.
func auditEvent(m redis.XMessage) AuditEvent {
	a, _ := m.Values["a"].(string)
	packed, _ := m.Values["e"].(string)
	f := strings.SplitN(packed, sep, 6)
	for len(f) < 6 {
		f = append(f, "")
	}
	ev := AuditEvent{ID: m.ID, Address: a, Action: f[0], Actor: f[3], Campaign: f[4], Why: f[5]}
	if len(f[1]) == 1 {
		ev.Reason = codeReason[f[1][0]]
	}
	if len(f[2]) == 1 {
		ev.Scope = codeScope[f[2][0]]
	}
	if ms, _, ok := strings.Cut(m.ID, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			ev.Time = time.UnixMilli(n).UTC()
		}
	}
	return ev
}
