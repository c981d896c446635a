// Package webhook delivers the event stream (pkg/events) to HTTP
// receivers: batches of events as signed JSON POSTs, at least once, in
// order, each webhook from its own durable cursor in Redis.
//
// A webhook's cursor ({prefix}:webhook:NAME:cursor) holds, per shard of
// the event log, the last event its receiver acknowledged (2xx): an
// events.Cursor's text. It moves only then, so a restart neither loses
// events nor sends old ones again (at most the batch in flight at a crash
// is sent twice: receivers de-duplicate by event id), and an event a
// shard gets late (another node's clock) is still sent. One
// engine at a time delivers a webhook: it holds the lease
// {prefix}:webhook:NAME:lease (renewed while it runs, expiring when it
// dies). A failing batch is retried with exponential backoff for
// retry_for (a day) and then skipped. Each webhook runs in its own
// goroutine with its own HTTP client, so a slow or dead receiver never
// slows delivery of mail.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// The request headers. The signature is "v1=" and the hex HMAC-SHA256,
// keyed with the webhook's secret, of the timestamp header's value, ".",
// and the body: see Sign.
const (
	HeaderTimestamp = "X-Sluice-Timestamp"
	HeaderSignature = "X-Sluice-Signature"
	HeaderWebhook   = "X-Sluice-Webhook"
)

// Body is what each POST carries.
type Body struct {
	Webhook string         `json:"webhook"`
	Events  []events.Event `json:"events"`
}

// Sign returns the signature header's value for a body sent at timestamp
// (unix seconds, as in the timestamp header).
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature header in constant time. Receivers
// should also refuse timestamps far from their clock (replays).
func Verify(secret, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

// Options tune the delivery loop; zero values take the defaults.
type Options struct {
	Owner      string        // who holds the leases (the engine's consumer name)
	LeaseTTL   time.Duration // 30s
	MinBackoff time.Duration // 1s: the first retry's wait, doubling
	MaxBackoff time.Duration // 5m
	Poll       time.Duration // 2s: how long one read waits for new events
}

func (o *Options) defaults() {
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
}

// Name is the webhook's name in keys and metrics: its configured name,
// else one derived from its URL.
func Name(w config.Webhook) string {
	if w.Name != "" {
		return w.Name
	}
	h := sha256.Sum256([]byte(w.URL))
	return "h" + hex.EncodeToString(h[:6])
}

// Run delivers every webhook until ctx ends. It returns at once when
// there are none.
func Run(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, hooks []config.Webhook, o Options, log *slog.Logger) {
	o.defaults()
	var wg sync.WaitGroup
	for _, w := range hooks {
		d := newDeliverer(rdb, ks, w, o, log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run(ctx)
		}()
	}
	wg.Wait()
}

type deliverer struct {
	rdb    redis.UniversalClient
	log    *events.Log
	cfg    config.Webhook
	name   string
	opts   Options
	lease  string
	cursor string
	types  map[events.Type]bool
	client *http.Client
	logger *slog.Logger
	held   atomic.Bool
	lagAt  time.Time
}

func newDeliverer(rdb redis.UniversalClient, ks keyspace.Space, w config.Webhook, o Options, log *slog.Logger) *deliverer {
	name := Name(w)
	d := &deliverer{
		rdb: rdb, log: events.New(rdb, ks), cfg: w, name: name, opts: o,
		lease:  ks.Key("webhook", name, "lease"),
		cursor: ks.Key("webhook", name, "cursor"),
		types:  map[events.Type]bool{},
		logger: log.With("webhook", name),
	}
	for _, t := range w.Types {
		d.types[events.Type(t)] = true
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	d.client = &http.Client{Timeout: w.Timeout, Transport: tr}
	return d
}

// acquireScript takes or renews a lease: ARGV owner, ttl ms.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// saveScript moves the cursor if the lease is still held: ARGV owner, id.
var saveScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

func (d *deliverer) renew(ctx context.Context) bool {
	ok, err := acquireScript.Run(ctx, d.rdb, []string{d.lease}, d.opts.Owner, d.opts.LeaseTTL.Milliseconds()).Int()
	if err != nil && ctx.Err() == nil {
		d.logger.Warn("webhook lease", "err", err)
	}
	d.held.Store(err == nil && ok == 1)
	return d.held.Load()
}

func (d *deliverer) run(ctx context.Context) {
	defer func() {
		_ = releaseScript.Run(context.Background(), d.rdb, []string{d.lease}, d.opts.Owner).Err()
	}()
	// The lease is renewed apart from the delivery loop, so a long retry
	// keeps it.
	go func() {
		t := time.NewTicker(d.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.renew(ctx)
			}
		}
	}()
	for ctx.Err() == nil {
		if !d.held.Load() && !d.renew(ctx) {
			sleep(ctx, d.opts.LeaseTTL/3)
			continue
		}
		if err := d.step(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("webhook", "err", err)
			sleep(ctx, d.opts.MinBackoff)
		}
	}
}

// step reads the next batch after the cursor and delivers it.
func (d *deliverer) step(ctx context.Context) error {
	var cur events.Cursor
	text, err := d.rdb.Get(ctx, d.cursor).Result()
	switch {
	case errors.Is(err, redis.Nil):
		// A new webhook starts with the events from now on.
		if cur, err = d.log.Last(ctx); err != nil {
			return err
		}
		if err := d.save(ctx, cur); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("webhook %s cursor: %w", d.name, err)
	default:
		if cur, err = events.ParseCursor(text); err != nil {
			return fmt.Errorf("webhook %s: %w", d.name, err)
		}
	}
	d.gaugeLag(ctx, cur)
	evs, next, err := d.log.ReadFrom(ctx, cur, d.cfg.Batch, d.opts.Poll)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		if next != cur {
			return d.save(ctx, next) // past what a batch entry had left
		}
		return nil
	}
	sel := evs[:0:0]
	for _, e := range evs {
		if len(d.types) == 0 || d.types[e.Type] {
			sel = append(sel, e)
		}
	}
	if len(sel) > 0 {
		if !d.deliver(ctx, sel) {
			return nil // lease lost or shutting down: the cursor stays
		}
		sent.WithLabelValues(d.name).Add(float64(len(sel)))
	}
	return d.save(ctx, next)
}

func (d *deliverer) save(ctx context.Context, c events.Cursor) error {
	ok, err := saveScript.Run(ctx, d.rdb, []string{d.lease, d.cursor}, d.opts.Owner, c.String()).Int()
	if err != nil {
		return fmt.Errorf("webhook %s: save cursor: %w", d.name, err)
	}
	if ok == 0 {
		d.held.Store(false)
	}
	return nil
}

// deliver POSTs one batch until a 2xx, retrying with backoff for
// retry_for; it returns false when it stopped without an answer (the
// lease was lost, or ctx ended) and true when the batch is done with
// (acknowledged, or given up).
func (d *deliverer) deliver(ctx context.Context, evs []events.Event) bool {
	body, err := json.Marshal(Body{Webhook: d.name, Events: evs})
	if err != nil {
		d.logger.Error("webhook: encode batch", "err", err)
		return true
	}
	start := time.Now()
	wait := d.opts.MinBackoff
	for try := 1; ; try++ {
		err := d.post(ctx, body)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		failures.WithLabelValues(d.name).Inc()
		if time.Since(start) > d.cfg.RetryFor {
			givenUp.WithLabelValues(d.name).Add(float64(len(evs)))
			d.logger.Error("webhook: batch given up after retry_for", "first", evs[0].ID, "last", evs[len(evs)-1].ID,
				"events", len(evs), "tries", try, "err", err)
			return true
		}
		level := slog.LevelInfo
		if try > 3 {
			level = slog.LevelWarn
		}
		d.logger.Log(ctx, level, "webhook: POST failed; retrying", "try", try, "in", wait, "err", err)
		sleep(ctx, wait+time.Duration(rand.Float64()*0.2*float64(wait)))
		if !d.held.Load() {
			return false
		}
		wait = min(wait*2, d.opts.MaxBackoff)
	}
}

func (d *deliverer) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice-webhook/1")
	req.Header.Set(HeaderWebhook, d.name)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", d.cfg.URL, resp.Status)
	}
	return nil
}

// gaugeLag publishes how many events the webhook is behind, at most
// every 5 s (counted up to 100,000).
func (d *deliverer) gaugeLag(ctx context.Context, cur events.Cursor) {
	if time.Since(d.lagAt) < 5*time.Second {
		return
	}
	d.lagAt = time.Now()
	if n, err := d.log.Behind(ctx, cur.String(), 100000); err == nil {
		lag.WithLabelValues(d.name).Set(float64(n))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Cursor returns webhook w's cursor (an events.Cursor's text: after the
// last event its receiver acknowledged in each shard), or "" before it
// first ran.
func Cursor(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, w config.Webhook) (string, error) {
	id, err := rdb.Get(ctx, ks.Key("webhook", Name(w), "cursor")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("webhook %s cursor: %w", Name(w), err)
	}
	return id, nil
}
