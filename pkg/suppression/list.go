package suppression

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// DefaultAuditCap is how many audit events are kept (approximately: the
// stream is trimmed with MAXLEN ~, which is cheap). At roughly 100 bytes an
// event that is about 100 MB of Redis at most.
const DefaultAuditCap = 1_000_000

// auditDetail bounds the reply text copied into add/update events: the
// entry holds it in full, and the stream holds up to a million events.
const auditDetail = 80

// MergeBatch is how many entries go in one pipeline: large enough to
// amortise round trips, small enough not to stall Redis for other
// clients; spread over the shards, about perCall entries per shard's
// script call. Bulk writers hand Merge this many at a time.
const MergeBatch = perCall * keyspace.Shards

// perCall is how many entries one script call handles: the per-call cost
// of a Lua script is about twice that of an entry's work, and 100 entries
// keep one call well under a millisecond of Redis time.
const perCall = 100

// List is the suppression list of one deployment. It is safe for concurrent
// use; all state is in Redis.
//
// Each shard (shard.go) holds a hash (field: address or @domain, value:
// encode(Entry)) and a capped stream of add/update/remove events.
type List struct {
	rdb      redis.UniversalClient
	space    keyspace.Space
	auditCap int64 // per shard: the list's cap ÷ Shards
}

// Option tunes a List.
type Option func(*List)

// WithAuditCap sets how many audit events are kept (default
// DefaultAuditCap), spread over the shards.
func WithAuditCap(n int64) Option {
	return func(l *List) { l.auditCap = max((n+keyspace.Shards-1)/keyspace.Shards, 1) }
}

// New returns the list stored under space.
func New(rdb redis.UniversalClient, space keyspace.Space, opts ...Option) *List {
	l := &List{rdb: rdb, space: space}
	WithAuditCap(DefaultAuditCap)(l)
	for _, o := range opts {
		o(l)
	}
	return l
}

// Add suppresses one address or domain, or merges e into its entry:
// FirstSeen is kept, LastSeen moves, and a global entry stays global when a
// marketing-scoped event arrives (scope is never narrowed silently; use
// Remove first). An empty Scope takes DefaultScope(e.Reason); zero times
// take now. The change is recorded in the audit stream with e.Source as
// actor.
func (l *List) Add(ctx context.Context, e Entry) error {
	if err := e.Prepare(time.Now()); err != nil {
		return fmt.Errorf("suppression: add: %w", err)
	}
	if _, err := l.upsert(ctx, []Entry{e}, ""); err != nil {
		return fmt.Errorf("suppression: add %s: %w", e.Address, err)
	}
	return nil
}

// AddMany adds entries in pipelines. Invalid entries are reported together
// in the error, and every valid one is still stored: a batch of hard
// bounces must not be lost for one bad address.
func (l *List) AddMany(ctx context.Context, es []Entry) error {
	now := time.Now()
	ok := make([]Entry, 0, len(es))
	var bad []error
	for i, e := range es {
		if err := e.Prepare(now); err != nil {
			bad = append(bad, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		ok = append(ok, e)
	}
	if _, err := l.Merge(ctx, ok, ""); err != nil {
		return fmt.Errorf("suppression: add many: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("suppression: add many: %d of %d entries invalid: %w", len(bad), len(es), errors.Join(bad...))
	}
	return nil
}

// Counts says what Merge did to the list.
type Counts struct {
	Added     int // new entries
	Updated   int // entries that existed and changed
	Unchanged int // entries already exactly as given
}

// Merge stores entries already checked by Entry.Prepare as Add does, in
// pipelines of about a thousand, and counts what changed. actor, when set, is
// the audit actor instead of each entry's Source. Merging the same
// entries twice changes nothing the second time (the audit included).
func (l *List) Merge(ctx context.Context, es []Entry, actor string) (Counts, error) {
	var c Counts
	if err := CheckName(actor); err != nil {
		return c, fmt.Errorf("suppression: merge: actor %w", err)
	}
	for start := 0; start < len(es); start += MergeBatch {
		res, err := l.upsert(ctx, es[start:min(start+MergeBatch, len(es))], actor)
		if err != nil {
			return c, fmt.Errorf("suppression: merge: %w", err)
		}
		for _, r := range res {
			switch r {
			case resAdded:
				c.Added++
			case resSame:
				c.Unchanged++
			default:
				c.Updated++
			}
		}
	}
	return c, nil
}

// upsert stores prepared entries in one pipeline, one script call per
// shard and perCall entries, and returns each result (resAdded...) in the
// order of es. actor overrides e.Source as the audit actor when set.
func (l *List) upsert(ctx context.Context, es []Entry, actor string) ([]int64, error) {
	groups := byShard(len(es), func(i int) string { return es[i].Address })
	var calls []scriptCall
	var parts [][]int // the entries of each call
	for n, g := range groups {
		keys := []string{l.entriesKey(n), l.auditKey(n)}
		for start := 0; start < len(g); start += perCall {
			part := g[start:min(start+perCall, len(g))]
			args := make([]any, 1, 1+5*len(part))
			args[0] = l.auditCap
			for _, i := range part {
				e := es[i]
				by := actor
				if by == "" {
					by = e.Source
				}
				args = append(args, e.Address, encode(e), by, cleanText(e.Detail, auditDetail), e.Campaign)
			}
			calls = append(calls, scriptCall{keys, args})
			parts = append(parts, part)
		}
	}
	cmds, err := l.evalMany(ctx, upsertScript, calls)
	if err != nil {
		return nil, err
	}
	res := make([]int64, len(es))
	for c, cmd := range cmds {
		r, err := cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", es[parts[c][0]].Address, err)
		}
		if len(r) != len(parts[c]) {
			return nil, fmt.Errorf("upsert: %d results for %d entries", len(r), len(parts[c]))
		}
		for k, i := range parts[c] {
			res[i] = r[k]
		}
	}
	return res, nil
}

// Remove deletes the entry of an address or "@domain" and records actor
// and why in the audit stream. It reports false when there was none. Only
// that exact entry goes: removing an address leaves its domain's entry.
func (l *List) Remove(ctx context.Context, addr, actor, why string) (bool, error) {
	n, err := l.RemoveMany(ctx, []string{addr}, actor, why)
	return n == 1, err
}

// RemoveMany removes entries in pipelines and returns how many existed.
// Invalid addresses are an error before anything is removed.
func (l *List) RemoveMany(ctx context.Context, addrs []string, actor, why string) (int, error) {
	fields := make([]string, len(addrs))
	for i, a := range addrs {
		f, err := Normalize(a)
		if err != nil {
			return 0, fmt.Errorf("suppression: remove: %w", err)
		}
		fields[i] = f
	}
	actor, why = cleanText(actor, maxIdent), cleanText(why, MaxDetail)
	removed := 0
	for start := 0; start < len(fields); start += MergeBatch {
		part := fields[start:min(start+MergeBatch, len(fields))]
		var calls []scriptCall
		for n, g := range byShard(len(part), func(i int) string { return part[i] }) {
			keys := []string{l.entriesKey(n), l.auditKey(n)}
			for c := 0; c < len(g); c += perCall {
				args := []any{l.auditCap, actor, why}
				for _, i := range g[c:min(c+perCall, len(g))] {
					args = append(args, part[i])
				}
				calls = append(calls, scriptCall{keys, args})
			}
		}
		cmds, err := l.evalMany(ctx, removeScript, calls)
		if err != nil {
			return removed, fmt.Errorf("suppression: remove: %w", err)
		}
		for _, c := range cmds {
			n, err := c.Int64()
			if err != nil {
				return removed, fmt.Errorf("suppression: remove: %w", err)
			}
			removed += int(n)
		}
	}
	return removed, nil
}

// Get returns the entry that suppresses addr, nil when none. For an
// address both its own entry and its domain's count; when both exist the
// wider scope is returned, the address's own on a tie. Use Lookup to see
// both.
func (l *List) Get(ctx context.Context, addr string) (*Entry, error) {
	own, dom, err := l.Lookup(ctx, addr)
	if err != nil {
		return nil, err
	}
	if own == nil || (dom != nil && dom.Scope == Global && own.Scope != Global) {
		return dom, nil
	}
	return own, nil
}

// Lookup returns the entry of addr itself and that of its domain (either
// nil). For "@domain" input only the domain entry is looked up.
func (l *List) Lookup(ctx context.Context, addr string) (own, domain *Entry, err error) {
	f, err := Normalize(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("suppression: lookup: %w", err)
	}
	fields := []string{f}
	if f[0] != '@' {
		fields = append(fields, domainOf(f))
	}
	vals, err := l.hmget(ctx, fields)
	if err != nil {
		return nil, nil, fmt.Errorf("suppression: lookup %s: %w", f, err)
	}
	out := make([]*Entry, 2)
	for i, v := range vals {
		if s, ok := v.(string); ok {
			e, err := Decode(fields[i], s)
			if err != nil {
				return nil, nil, err
			}
			out[i] = &e
		}
	}
	if f[0] == '@' {
		return nil, out[0], nil
	}
	return out[0], out[1], nil
}

func domainOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == '@' {
			return addr[i:]
		}
	}
	return addr
}
