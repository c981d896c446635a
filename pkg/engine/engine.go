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
// implements it, and a test target does in a few lines.
type Sender interface {
	Send(ctx context.Context, d deliver.Destination, env deliver.Envelope, msg []byte) outcome.Outcome
}

// Throttle paces attempts per destination without blocking: Admit grants
// a permit or names a time to ask again; *throttle.Limiter implements it.
type Throttle interface {
	Key(domain, key string, hosts []string) string
	Admit(ctx context.Context, key, lane string) (*throttle.Permit, time.Time, error)
}

// Signer signs a message for a domain (a no-op for domains without a key);
// *dkim.Signer implements it.
type Signer interface {
	Sign(domain string, msg []byte) ([]byte, error)
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
}

// Engine is one delivery process. Several may share one Redis.
type Engine struct {
	Deps
	ks    keyspace.Space
	q     *streams.Queue
	store *store.Store
	cache campaignCache
	// tick paces the retry mover and reclaimer.
	tick time.Duration
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
		Deps:  d,
		ks:    ks,
		q:     streams.New(d.Redis, ks, d.Config.Delivery.Consumer),
		store: store.New(d.Redis, ks),
		tick:  500 * time.Millisecond,
	}
	e.cache.store = e.store
	return e
}

// Run delivers until ctx ends. Jobs in flight when it ends stay in this
// consumer's pending list and are taken up again at the next start.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.q.Init(ctx); err != nil {
		return err
	}
	workers := e.Config.Delivery.Workers
	lanes := map[streams.Lane]chan streams.Delivery{
		streams.Transactional: make(chan streams.Delivery, workers),
		streams.Marketing:     make(chan streams.Delivery, workers),
	}
	var wg sync.WaitGroup
	for _, l := range streams.Lanes {
		wg.Add(1)
		go func(l streams.Lane) {
			defer wg.Done()
			e.read(ctx, l, lanes[l], workers)
		}(l)
	}
	wg.Add(1)
	go func() { defer wg.Done(); e.maintain(ctx, lanes) }()
	var work sync.WaitGroup
	for i := 0; i < workers; i++ {
		work.Add(1)
		go func() {
			defer work.Done()
			e.work(ctx, lanes[streams.Transactional], lanes[streams.Marketing])
		}()
	}
	wg.Wait()
	work.Wait()
	return nil
}

// read feeds one lane's channel: first this consumer's own pending jobs
// (left by a previous run), then new ones. A full channel blocks only this
// lane's reader.
func (e *Engine) read(ctx context.Context, l streams.Lane, out chan<- streams.Delivery, batch int) {
	pending := true
	for ctx.Err() == nil {
		ds, err := e.q.Read(ctx, l, batch, time.Second, pending)
		if err != nil {
			if ctx.Err() == nil {
				e.Log.Error("read jobs", "lane", l, "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if pending && len(ds) == 0 {
			pending = false
			continue
		}
		for _, d := range ds {
			select {
			case out <- d:
			case <-ctx.Done():
				return
			}
		}
	}
}

// maintain moves due retries back into their streams and takes over jobs
// held too long by consumers that are presumably dead.
func (e *Engine) maintain(ctx context.Context, lanes map[streams.Lane]chan streams.Delivery) {
	t := time.NewTicker(e.tick)
	defer t.Stop()
	idle := e.Config.Delivery.ReclaimIdle
	lastReclaim := e.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := e.q.MoveDue(ctx, e.Now(), 1000); err != nil && ctx.Err() == nil {
			e.Log.Error("move due retries", "err", err)
		}
		if e.Now().Sub(lastReclaim) < idle/4 {
			continue
		}
		lastReclaim = e.Now()
		for _, l := range streams.Lanes {
			ds, err := e.q.Reclaim(ctx, l, idle, 100)
			if err != nil && ctx.Err() == nil {
				e.Log.Error("reclaim", "lane", l, "err", err)
			}
			for _, d := range ds {
				e.Log.Warn("reclaimed job from an unresponsive engine", "job", d.ID, "lane", l)
				select {
				case lanes[l] <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// work delivers jobs, transactional ones first whenever any wait.
func (e *Engine) work(ctx context.Context, tx, mk <-chan streams.Delivery) {
	for {
		var d streams.Delivery
		select {
		case d = <-tx:
		default:
			select {
			case d = <-tx:
			case d = <-mk:
			case <-ctx.Done():
				return
			}
		}
		e.process(ctx, d)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
