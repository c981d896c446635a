// Package engine runs delivery: it reads jobs from both lanes, builds each
// message, paces it through the throttle, sends it and settles the outcome
// (record, then acknowledge) — and keeps retries and reclaimed jobs moving.
package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
)

// Sender is the delivery contract the engine needs; *deliver.SMTP
// implements it, and a test target does in a few lines. The message is
// given as CRLF-canonical pieces to write in turn (DKIM-Signature fields,
// then a message.Message's Parts): they are valid only until SendParts
// returns.
type Sender interface {
	SendParts(ctx context.Context, d deliver.Destination, env deliver.Envelope, parts [][]byte) outcome.Outcome
}

// Throttle paces attempts per destination without blocking: Admit grants
// a permit or names a time to ask again; *throttle.Limiter implements it.
type Throttle interface {
	Key(domain, key string, hosts []string) string
	Admit(ctx context.Context, key, lane string) (*throttle.Permit, time.Time, error)
}

// Signer signs a message for a domain, given as the CRLF-canonical pieces
// Sender gets, and returns the DKIM-Signature fields to send in front of
// them (nil for a domain without a key); *dkim.Signer implements it.
type Signer interface {
	SignParts(domain string, parts [][]byte) ([]byte, error)
}

// Deps are what an engine is built from.
type Deps struct {
	Config   *config.Config
	Redis    redis.UniversalClient
	Router   *deliver.Router
	Sender   Sender
	Throttle Throttle
	// Signer adds DKIM signatures for the From domain; nil signs nothing.
	Signer Signer
	// Suppression is checked before every attempt and receives hard
	// bounces; nil disables both.
	Suppression *suppression.List
	// Unsubscribe signs RFC 8058 one-click links for marketing mail; nil
	// (no unsubscribe.base_url/secret configured) leaves them out.
	Unsubscribe *unsubscribe.Signer
	Log         *slog.Logger
	// Now is the clock (a test seam); nil means time.Now.
	Now func() time.Time
	// WarmupClock is the warm-up caps' clock (a test seam for days
	// passing); nil means Now.
	WarmupClock func() time.Time
	// IdleWait, when set, replaces idleWait, the longest the line server
	// sleeps with nothing due (a test seam: a wake-up must not wait for
	// it).
	IdleWait time.Duration
}

// Engine is one delivery process. Several may share one Redis.
type Engine struct {
	Deps
	ks       keyspace.Space
	q        *streams.Queue
	store    *store.Store
	cache    campaignCache
	inflight inflight
	pace     pollPace // the line server's polls under bulk load
	sweeps   sweeps
	health   health
	slots    *slots
	egress   *egress // sources and pools (egress.go)
	flow     flow
	known    known
	waiting  waiting
	// wakeup tells the line server that routers put jobs in line.
	wakeup chan struct{}
	// abandon ends a drain early (a second SIGTERM).
	abandon     chan struct{}
	abandonOnce sync.Once
	// tick paces the retry mover, the heartbeat and takeovers.
	tick time.Duration
	// holdersAt is when takeOver last looked for consumers without a
	// heartbeat (maintain's goroutine only).
	holdersAt time.Time
}

// New builds an engine.
func New(d Deps) *Engine {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Throttle == nil {
		// Commands build the throttle themselves to report a bad
		// providers file; here a broken one falls back to the shipped.
		t, err := throttle.FromConfig(d.Config, d.Redis, d.Log)
		if err != nil {
			d.Log.Error("throttle config; using the shipped providers", "err", err)
			c := *d.Config
			c.Throttle.ProvidersFile, c.Throttle.Rules = "", nil
			t, _ = throttle.FromConfig(&c, d.Redis, d.Log)
		}
		d.Throttle = t
	}
	ks := keyspace.Space(d.Config.Redis.Prefix)
	e := &Engine{
		Deps:    d,
		ks:      ks,
		q:       streams.New(d.Redis, ks, d.Config.Delivery.Consumer),
		store:   store.New(d.Redis, ks),
		slots:   newSlots(d.Config.Delivery.Workers),
		wakeup:  make(chan struct{}, 1),
		pace:    newPollPace(),
		abandon: make(chan struct{}),
		tick:    500 * time.Millisecond,
	}
	e.cache.store = e.store
	e.egress = newEgress(d)
	e.q.WaitReplicas(d.Config.Redis.WaitReplicas, d.Config.Redis.WaitTimeout)
	if t, ok := d.Throttle.(interface{ OnRaise(func(string)) }); ok {
		// A key's rate went up or its suspension ended: its lines,
		// scored with the old limits' times, are due now.
		t.OnRaise(e.raised)
	}
	return e
}

// Run delivers until ctx ends, then drains: it stops reading, hands jobs
// not yet started back to the queue, and lets attempts in flight finish
// and settle for up to delivery.drain_timeout (or until Abandon). What is
// still unsettled then stays in this consumer's pending list and is taken
// up again at its next start, or by another engine (at-least-once).
func (e *Engine) Run(ctx context.Context) error {
	if err := e.egress.check(); err != nil {
		return err
	}
	if err := e.q.Init(ctx); err != nil {
		return err
	}
	if err := e.q.Beat(ctx); err != nil {
		return err
	}
	e.packLines(ctx)
	e.loadScripts(ctx)
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	go func() {
		<-ctx.Done()
		e.Log.Info("draining: no new jobs; attempts in flight may finish",
			"in_flight", e.inflight.len(), "drain_timeout", e.Config.Delivery.DrainTimeout)
		select {
		case <-time.After(e.Config.Delivery.DrainTimeout):
			e.Log.Warn("drain timed out; unsettled jobs stay pending", "in_flight", e.inflight.len())
		case <-e.abandon:
			e.Log.Warn("drain abandoned; unsettled jobs stay pending", "in_flight", e.inflight.len())
		case <-hard.Done():
		}
		cancelHard()
	}()

	// Whatever a previous run of this consumer held goes back in line
	// before anything else is read: each such job is attempted again
	// once, by whichever engine gets to it.
	if n, err := e.requeueOwn(ctx); err != nil {
		return err
	} else if n > 0 {
		e.Log.Info("put back the jobs a previous run held", "jobs", n)
	}

	workers := e.Config.Delivery.Workers
	tasks := map[streams.Lane]chan task{}
	for _, l := range streams.Lanes {
		tasks[l] = make(chan task, workers)
	}
	var routers sync.WaitGroup
	for _, l := range streams.Lanes {
		routers.Add(1)
		go func() { defer routers.Done(); e.routeLane(ctx, hard, l) }()
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		e.serveLines(ctx, hard, tasks)
		for _, ch := range tasks {
			close(ch)
		}
	}()
	var work sync.WaitGroup
	for i := 0; i < workers; i++ {
		work.Add(1)
		go func() {
			defer work.Done()
			e.work(ctx, hard, tasks[streams.Transactional], tasks[streams.Marketing])
		}()
	}
	// Heartbeat and retries go on through the drain: the heartbeat keeps
	// other engines off the jobs still being attempted.
	mctx, stopMaintain := context.WithCancel(hard)
	maintained := make(chan struct{})
	go func() { defer close(maintained); e.maintain(ctx, mctx) }()
	routers.Wait()
	<-served
	work.Wait()
	stopMaintain()
	<-maintained
	if ctx.Err() != nil && hard.Err() == nil {
		e.Log.Info("drain finished: every attempt in flight settled")
	}
	return nil
}

// requeueOwn puts back in line every job this consumer holds, in the
// lanes and in every line.
func (e *Engine) requeueOwn(ctx context.Context) (int, error) {
	total := 0
	for _, l := range streams.Lanes {
		n, err := e.q.RequeueOwn(ctx, l)
		if err != nil {
			return total, err
		}
		total += n
	}
	err := e.q.Lines(ctx, func(l streams.Line) error {
		n, err := e.q.RequeueOwnLine(ctx, l)
		total += n
		return err
	})
	if err != nil {
		return total, err
	}
	// Lines set aside by a previous run (for the runs it had going) are
	// due now; a suspended key's are set aside again at the first look.
	_, err = e.q.WakeAll(ctx)
	return total, err
}

// Abandon ends a drain at once (a second SIGTERM): attempts still in
// flight are cut off and their jobs stay pending.
func (e *Engine) Abandon() { e.abandonOnce.Do(func() { close(e.abandon) }) }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
