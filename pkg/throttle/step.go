package throttle

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/text"
)

//go:embed step.lua
var stepLua string

var stepScript = redis.NewScript(stepLua)

// stepReq is what an engine tells the shared state of one key.
type stepReq struct {
	report
	event string // "", evRate or evConn
	text  string // the reply behind the event, for `limits show`
	lane  string // "", "t" or "m": lease slots for this lane
	want  int    // slots wanted
	rules []*rule
}

// report is the engine's view of a key since its last step.
type report struct {
	acc     float64 // accepted messages per second, -1 when not measured
	inUse   int
	open    int  // sessions open (Sessions)
	hold    int  // the least slots it holds until it takes in the step
	want    int  // the most attempts at once lately: the slots it uses
	starved bool // a permit was refused for want of a connection
	txAct   bool // the transactional lane asked lately
	ok, def int
	bounce  int
	fail    int
	window  time.Duration // reaction window (bucket.reactionWindow)
	latency float64       // seconds per attempt (EWMA)
}

// Event kinds.
const (
	evRate = "rate" // provider-scoped deferral: slow the rate down
	evConn = "conn" // too many sessions, connection refused: fewer connections
)

// stepRes is the shared state as the step left it.
type stepRes struct {
	rate      float64       // effective rate, msg/s
	conc      int           // effective concurrency, all engines
	share     int           // the connection slots this engine may dial into
	keep      int           // the sessions it may keep open
	suspended time.Duration // remaining suspension
	state     string
	next      time.Duration // when the next slot would be, when none was leased (-1: n/a)
	engines   int
	slots     []time.Duration // leased slots, offsets from now
}

func (l *Limiter) stepKeys(key string) []string {
	return []string{stateKey(l.ks, key), engKey(l.ks, key)}
}

func (l *Limiter) stepArgs(b *bucket, q stepReq) []any {
	now := int64(-1)
	if l.clock != nil {
		now = l.clock().UnixMilli()
	}
	lim := b.lim
	args := []any{
		now, l.id, b.key,
		lim.StartRate, lim.MinRate, lim.MaxRate, lim.Burst,
		lim.StartConnections, lim.MinConnections, lim.MaxConnections,
		q.window.Milliseconds(), l.share,
		q.acc, q.inUse, b2i(q.starved), b2i(q.txAct), q.latency, q.open, q.hold, q.want,
		q.ok, q.def, q.bounce, q.fail,
		q.event, text.Clip(q.text, 300),
		q.lane, q.want, leaseHorizon.Milliseconds(),
		cutTo, blindCut, cubic, usedFraction,
		connUp.Milliseconds(), engineLive.Milliseconds(), txActiveFor.Milliseconds(), stateTTL.Milliseconds(),
		len(q.rules),
	}
	for _, r := range q.rules {
		args = append(args, r.Name, r.Action, r.Duration.Milliseconds(), r.count, r.within.Milliseconds(),
			r.Rate, r.RateFactor, r.Connections, r.ConnectionsFactor)
	}
	return args
}

// step runs one step for b. When b is due in the index of keys (its
// first step, then every indexEvery), the index is written in the same
// round trip: a key's first attempt waits for one round trip, not two.
func (l *Limiter) step(ctx context.Context, b *bucket, q stepReq) (stepRes, error) {
	kind := "event"
	if q.want > 0 {
		kind = "lease"
	}
	steps.WithLabelValues(kind).Inc()
	b.mu.Lock()
	due := b.indexDue(l.now())
	b.mu.Unlock()
	keys, args := l.stepKeys(b.key), l.stepArgs(b, q)
	var cmd *redis.Cmd
	var indexed func() error
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = stepScript.EvalSha(ctx, p, keys, args...)
		if due {
			indexed = indexIn(ctx, p, l.ks, l.now(), b.key)
		}
		return nil
	})
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = stepScript.Run(ctx, l.rdb, keys, args...) // loads it
	}
	if indexed != nil {
		if err := indexed(); err != nil {
			l.log.Warn("throttle index", "err", err)
			b.mu.Lock()
			b.indexed = time.Time{} // due again at the next step
			b.mu.Unlock()
		}
	}
	v, err := cmd.Slice()
	if err != nil {
		return stepRes{}, fmt.Errorf("throttle step %s: %w", b.key, err)
	}
	return parseStep(v)
}

func parseStep(v []any) (stepRes, error) {
	if len(v) < 8 {
		return stepRes{}, fmt.Errorf("throttle step: short reply %v", v)
	}
	var r stepRes
	var err error
	if r.rate, err = strconv.ParseFloat(str(v[0]), 64); err != nil {
		return r, fmt.Errorf("throttle step: rate %v: %w", v[0], err)
	}
	r.conc, r.share, r.engines = int(i64(v[1])), int(i64(v[2])), int(i64(v[6]))
	susp, _ := strconv.ParseInt(str(v[3]), 10, 64)
	r.suspended = time.Duration(susp) * time.Millisecond
	r.state = str(v[4])
	r.next = -1
	if s := str(v[5]); s != "" {
		r.next = msDur(s)
	}
	r.keep = int(i64(v[7]))
	for _, s := range v[8:] {
		r.slots = append(r.slots, time.Duration(i64(s))*time.Microsecond)
	}
	return r, nil
}

func msDur(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func i64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
