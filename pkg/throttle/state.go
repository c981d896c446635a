package throttle

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Status is the shared state of one key, for operators.
type Status struct {
	// Provider is the bucket's name: a destination key, or KEY@SOURCE
	// for an egress source's own state toward it (see Bucket).
	Provider string `json:"provider"`
	// Source is the egress source of a KEY@SOURCE bucket, "" for a key's
	// own (the default route's).
	Source string `json:"source,omitempty"`
	// State: normal, backoff (cut within the last 30 s), capped (a rule's
	// ceiling applies), pinned (set by an operator) or suspended.
	State   string  `json:"state"`
	Rate    float64 `json:"rate"`    // messages/s, all engines
	Ceiling float64 `json:"ceiling"` // accepted rate measured at the last cut
	MinRate float64 `json:"min_rate"`
	MaxRate float64 `json:"max_rate"`
	// Connections is the limit, InUse the attempts in progress and
	// Sessions the SMTP sessions open (busy or idle), over all engines.
	Connections    int `json:"connections"`
	InUse          int `json:"in_use"`
	Sessions       int `json:"sessions"`
	MinConnections int `json:"min_connections"`
	MaxConnections int `json:"max_connections"`
	Engines        int `json:"engines"`

	SuspendedUntil time.Time `json:"suspended_until,omitzero"`
	SuspendedBy    string    `json:"suspended_by,omitempty"`
	CappedUntil    time.Time `json:"capped_until,omitzero"`
	CappedBy       string    `json:"capped_by,omitempty"`
	// PinnedUntil is zero for a pin without end (until reset).
	PinnedUntil time.Time `json:"pinned_until,omitzero"`

	LastDeferral   string    `json:"last_deferral,omitempty"`
	LastDeferralAt time.Time `json:"last_deferral_at,omitzero"`

	Delivered int64 `json:"delivered"`
	Deferred  int64 `json:"deferred"`
	Bounced   int64 `json:"bounced"`
	Failed    int64 `json:"failed"`
	Decreases int64 `json:"decreases"`
}

// Inspect returns the state of every key used within the last day, most
// recently used first.
func Inspect(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space) ([]Status, error) {
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	names, err := rdb.ZRevRange(ctx, indexKey(ks), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	pipe := rdb.Pipeline()
	states := make([]*redis.MapStringStringCmd, len(names))
	engs := make([]*redis.MapStringStringCmd, len(names))
	for i, n := range names {
		states[i] = pipe.HGetAll(ctx, stateKey(ks, n))
		engs[i] = pipe.HGetAll(ctx, engKey(ks, n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	var out []Status
	for i, n := range names {
		h := states[i].Val()
		if len(h) == 0 {
			continue
		}
		out = append(out, status(n, h, engs[i].Val(), now))
	}
	return out, nil
}

func sourceOf(name string) string { _, s := SplitBucket(name); return s }

// status computes what step.lua would: effective rate and connections.
func status(name string, h, eng map[string]string, now time.Time) Status {
	f := func(k string) float64 { v, _ := strconv.ParseFloat(h[k], 64); return v }
	i := func(k string) int64 { return int64(f(k)) }
	at := func(k string) time.Time {
		if ms := i(k); ms > 0 {
			return time.UnixMilli(ms)
		}
		return time.Time{}
	}
	s := Status{Provider: name, Source: sourceOf(name), Rate: f("r"), Ceiling: f("w"), Connections: int(f("conc")),
		LastDeferral: h["lt"], LastDeferralAt: at("la"),
		Delivered: i("n_ok"), Deferred: i("n_def"), Bounced: i("n_bounce"), Failed: i("n_fail"), Decreases: i("n_dec")}
	if c := strings.Fields(h["cfg"]); len(c) == 4 {
		s.MinRate, _ = strconv.ParseFloat(c[0], 64)
		s.MaxRate, _ = strconv.ParseFloat(c[1], 64)
		s.MinConnections, _ = strconv.Atoi(c[2])
		s.MaxConnections, _ = strconv.Atoi(c[3])
	}
	s.State = "normal"
	if d := at("tdec"); !d.IsZero() && now.Sub(d) < 30*time.Second {
		s.State = "backoff"
	}
	if u := at("capu"); u.After(now) {
		s.State, s.CappedUntil, s.CappedBy = "capped", u, h["cwhy"]
		if v := f("capr"); v > 0 {
			s.Rate = min(s.Rate, v)
		}
		if v := int(f("capc")); v > 0 {
			s.Connections = min(s.Connections, v)
		}
	}
	if _, pr := h["ovr"]; pr || h["ovc"] != "" {
		if u := at("ovu"); u.IsZero() || u.After(now) {
			s.State, s.PinnedUntil = "pinned", u
			if v := f("ovr"); v > 0 {
				s.Rate = v
			}
			if v := int(f("ovc")); v > 0 {
				s.Connections = v
			}
		}
	}
	if u := at("susp"); u.After(now) {
		s.State, s.SuspendedUntil, s.SuspendedBy = "suspended", u, h["swhy"]
	}
	for _, v := range eng {
		p := strings.Fields(v) // see step.lua
		if len(p) < 4 {
			continue
		}
		seen, _ := strconv.ParseInt(p[0], 10, 64)
		if now.Sub(time.UnixMilli(seen)) > 3*time.Second {
			continue
		}
		u, _ := strconv.Atoi(p[1])
		s.InUse += u
		if len(p) > 4 {
			o, _ := strconv.Atoi(p[4])
			s.Sessions += o
		}
		s.Engines++
	}
	return s
}

// setLua pins a key's rate and/or connections, optionally until a time,
// and makes the pinned values the adaptive state's starting point when
// the pin ends. It touches the state hash only (one slot); Set indexes the
// key apart.
var setLua = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, conc, dur = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rate > 0 then
  redis.call('HSET', KEYS[1], 'ovr', rate, 'r', rate, 'r0', rate, 'w', rate, 'tau', 0)
end
if conc > 0 then redis.call('HSET', KEYS[1], 'ovc', conc, 'conc', conc) end
local u = 0
if dur > 0 then u = now + dur end
redis.call('HSET', KEYS[1], 'ovu', u)
redis.call('PEXPIRE', KEYS[1], 86400000)
return u
`)

// Set pins key's rate (messages/s, all engines) and/or connections (0
// leaves one as it is, adapting no more while pinned) for d, or until
// Reset when d is 0. Running engines apply it within their sync interval.
func Set(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, key string, rate float64, conns int, d time.Duration) error {
	if rate < 0 || conns < 0 || (rate == 0 && conns == 0) {
		return fmt.Errorf("throttle: set %s: need a positive rate or connections", key)
	}
	err := setLua.Run(ctx, rdb, []string{stateKey(ks, key)}, rate, conns, d.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("throttle: set %s: %w", key, err)
	}
	return index(ctx, rdb, ks, time.Now(), key)
}

// Reset forgets everything learnt and decided about key: adaptive rate
// and connections go back to their start values, and suspensions, caps,
// pins and rule counts end. Engines apply it within their sync interval.
func Reset(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, key string) error {
	if err := rdb.Del(ctx, stateKey(ks, key)).Err(); err != nil {
		return fmt.Errorf("throttle: reset %s: %w", key, err)
	}
	// A domain's bucket is no longer hot for engines yet to hear of it.
	if err := rdb.ZRem(ctx, hotKey(ks), key).Err(); err != nil {
		return fmt.Errorf("throttle: reset %s: %w", key, err)
	}
	return nil
}

// Known reports the keys with shared state, sorted.
func Known(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space) ([]string, error) {
	names, err := rdb.ZRange(ctx, indexKey(ks), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Has reports whether key has shared state (what Reset would remove).
func Has(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, key string) (bool, error) {
	n, err := rdb.Exists(ctx, stateKey(ks, key)).Result()
	if err != nil {
		return false, fmt.Errorf("throttle: %w", err)
	}
	return n > 0, nil
}
