package warmup

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Per source, ramping or warm, sluice keeps running totals of what its
// mail came to: delivered, hard-bounced (at SMTP time, or later by mail)
// and complained about, in {prefix~warm:SOURCE}:tot, so a source's
// complaint and hard-bounce rates over its delivered mail can be shown
// next to the campaigns' (campaignctl sources). A bounce that arrives by
// mail moves one recipient from delivered to bounced, as the campaign's
// counters do.

// Fields of a source's totals hash.
const (
	totDelivered  = "dlv"
	totBounced    = "bnc"
	totComplaints = "cmp"
)

// totalsEvery is how often the engine's outcome counts are written out:
// at most this much of a source's totals is lost with a crashed engine.
const totalsEvery = time.Second

func totalsKey(ks keyspace.Space, source string) string {
	return ks.Own("warm:"+source, "tot")
}

// Totals buffers an engine's per-source outcome counts and writes them
// out at most once a second (one pipelined round trip), rather than a
// command per message. It is safe for concurrent use.
type Totals struct {
	rdb redis.UniversalClient
	ks  keyspace.Space
	log *slog.Logger

	mu    sync.Mutex
	pend  map[string]map[string]int64 // source → field → count
	timer *time.Timer
}

// NewTotals returns the outcome counter of the deployment in ks.
func NewTotals(rdb redis.UniversalClient, ks keyspace.Space, log *slog.Logger) *Totals {
	if log == nil {
		log = slog.Default()
	}
	return &Totals{rdb: rdb, ks: ks, log: log, pend: map[string]map[string]int64{}}
}

// Note counts one attempt's outcome from source: delivered, or bounced
// (a hard bounce of the recipient or its domain); the rest counts
// nothing. It is written out within totalsEvery.
func (t *Totals) Note(source string, out outcome.Outcome) {
	field := ""
	switch {
	case source == "" || out.Reason == outcome.Interrupted:
	case out.Status == outcome.Delivered:
		field = totDelivered
	case out.Status == outcome.Bounced && (out.Scope == outcome.ScopeRecipient || out.Scope == outcome.ScopeDomain):
		field = totBounced
	}
	if field == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(source, field, 1)
}

// addLocked adds n to a pending count and makes sure a flush comes.
// Caller holds t.mu.
func (t *Totals) addLocked(source, field string, n int64) {
	fs := t.pend[source]
	if fs == nil {
		fs = map[string]int64{}
		t.pend[source] = fs
	}
	fs[field] += n
	if t.timer == nil {
		t.timer = time.AfterFunc(totalsEvery, t.flushLater)
	}
}

// add merges counts back into the pending ones (a failed flush's).
func (t *Totals) add(counts map[string]map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for src, fs := range counts {
		for f, n := range fs {
			t.addLocked(src, f, n)
		}
	}
}

func (t *Totals) flushLater() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Flush(ctx); err != nil {
		t.log.Warn("source totals not written; trying again", "err", err)
	}
}

// Flush writes out what is pending; on an error it stays pending.
func (t *Totals) Flush(ctx context.Context) error {
	t.mu.Lock()
	counts := t.pend
	t.pend, t.timer = map[string]map[string]int64{}, nil
	t.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	pipe := t.rdb.Pipeline()
	for src, fs := range counts {
		for f, n := range fs {
			pipe.HIncrBy(ctx, totalsKey(t.ks, src), f, n)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.add(counts)
		return fmt.Errorf("warmup: source totals: %w", err)
	}
	return nil
}

// SourceTotals are a source's running totals and rates (fractions of
// delivered; zero while nothing is delivered).
type SourceTotals struct {
	Delivered     int64   `json:"delivered"`
	Bounced       int64   `json:"bounced"`
	Complaints    int64   `json:"complaints"`
	ComplaintRate float64 `json:"complaint_rate"`
	BounceRate    float64 `json:"bounce_rate"`
}

// ReadTotals returns the totals of each of sources, in one round trip.
func ReadTotals(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, sources []string) (map[string]SourceTotals, error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(sources))
	for i, s := range sources {
		cmds[i] = pipe.HMGet(ctx, totalsKey(ks, s), totDelivered, totBounced, totComplaints)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("warmup: read source totals: %w", err)
	}
	out := make(map[string]SourceTotals, len(sources))
	for i, s := range sources {
		v := cmds[i].Val()
		n := func(j int) int64 { s, _ := v[j].(string); x, _ := strconv.ParseInt(s, 10, 64); return x }
		st := SourceTotals{Delivered: n(0), Bounced: n(1), Complaints: n(2)}
		if st.Delivered > 0 {
			st.ComplaintRate = float64(st.Complaints) / float64(st.Delivered)
			st.BounceRate = float64(st.Bounced) / float64(st.Delivered)
		}
		out[s] = st
	}
	return out, nil
}
