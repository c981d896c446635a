package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// process makes one delivery attempt and settles its outcome.
func (e *Engine) process(ctx context.Context, d streams.Delivery) {
	out := e.attempt(ctx, d)
	if ctx.Err() != nil && out.Status == deliver.Deferred {
		// Interrupted by shutdown: leave the job pending; the next start
		// of this engine reads it again.
		return
	}
	// A final answer is recorded even while stopping: it happened.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	e.settle(sctx, d, out)
}

func (e *Engine) attempt(ctx context.Context, d streams.Delivery) deliver.Outcome {
	prep, err := e.cache.get(ctx, d.Campaign)
	if err != nil {
		if ctx.Err() != nil {
			return deliver.Outcome{Status: deliver.Deferred, Stage: deliver.StageBuild, Text: err.Error()}
		}
		return deliver.Outcome{Status: deliver.Failed, Scope: deliver.ScopeMessage, Stage: deliver.StageBuild, Reason: "campaign", Text: err.Error()}
	}
	msg, err := prep.tmpl.Render(d.To, d.Fields, message.Extra{})
	if err != nil {
		return deliver.Outcome{Status: deliver.Failed, Scope: deliver.ScopeMessage, Stage: deliver.StageBuild, Reason: "render", Text: err.Error()}
	}
	if e.Signer != nil {
		if msg, err = e.Signer.Sign(prep.tmpl.FromDomain(), msg); err != nil {
			return deliver.Outcome{Status: deliver.Failed, Scope: deliver.ScopeSender, Stage: deliver.StageBuild, Reason: "dkim", Text: err.Error()}
		}
	}
	dest, out, ok := e.Router.Resolve(ctx, domainOf(d.To))
	if !ok {
		return out
	}
	b, release, err := e.Throttle.Acquire(ctx, dest.Key)
	if err != nil {
		return deliver.Outcome{Status: deliver.Deferred, Stage: deliver.StageQueue, Text: err.Error()}
	}
	defer release()
	dest.MaxMessagesPerConn = b.MaxPerConn
	return e.Sender.Send(ctx, dest, deliver.Envelope{From: prep.envFrom, To: d.To}, msg)
}

// settle records the outcome and acknowledges the job; a deferral is
// rescheduled (or expires) in the same step.
func (e *Engine) settle(ctx context.Context, d streams.Delivery, out deliver.Outcome) {
	now := e.Now()
	rec := streams.Record{
		Status: string(out.Status), Code: out.Code, Enhanced: out.Enhanced, Reply: clip(out.Text, 400),
		Reason: out.Reason, Host: out.Host, Attempts: d.Attempts + 1, At: now.UnixMilli(), Line: d.Line, JobID: d.ID,
	}
	var next *streams.Job
	var retryAt time.Time
	if out.Status == deliver.Deferred {
		lane := e.lane(d.Lane)
		retryAt = now.Add(backoff(lane, d.Attempts, out.RetryAfter))
		if first := time.UnixMilli(d.First); d.First > 0 && retryAt.Sub(first) > lane.MaxAge {
			// Past the lane's max age the job ends; the recipient is not
			// suppressed for it (it says nothing certain about the address).
			rec.Status, rec.Reason = string(deliver.Bounced), "expired"
		} else {
			j := d.Job
			j.Attempts++
			next = &j
		}
	}
	for try := 0; ; try++ {
		res, err := e.q.Settle(ctx, d, e.tally(d.Campaign), rec, next, retryAt)
		if err == nil {
			if res == streams.NotHeld {
				e.Log.Warn("job was reclaimed by another engine before it settled", "job", d.ID)
			}
			break
		}
		if try == 4 || ctx.Err() != nil {
			// Not acknowledged: the job stays pending and is delivered again
			// after a restart or reclaim (at-least-once).
			e.Log.Error("settle failed; job stays pending", "job", d.ID, "err", err)
			return
		}
		sleep(ctx, time.Duration(100<<try)*time.Millisecond)
	}
	attrs := append([]any{"job", d.ID, "to", d.To, "attempt", d.Attempts + 1}, out.LogAttrs()...)
	switch {
	case out.Status == deliver.Delivered:
		e.Log.Debug("delivered", attrs...)
	case rec.Reason == "expired":
		e.Log.Info("expired", attrs...)
	default:
		e.Log.Info(string(out.Status), append(attrs, "retry_at", retryAt)...)
	}
}

// backoff is the wait before the next attempt: the lane's schedule (the
// last step repeats) or the receiver's own hint ("try again in 5
// minutes"), with ±10% jitter so retries of one burst spread out.
func backoff(l config.Lane, attempts int, hint time.Duration) time.Duration {
	d := hint
	if d <= 0 {
		i := min(attempts, len(l.Retry)-1)
		d = l.Retry[i]
	}
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

func (e *Engine) lane(l streams.Lane) config.Lane {
	if l == streams.Transactional {
		return e.Config.Lanes.Transactional
	}
	return e.Config.Lanes.Marketing
}

func (e *Engine) tally(campaignID string) streams.Tally {
	if campaignID != "" {
		return e.store.Tally(campaignID)
	}
	return streams.Tally{Counters: e.ks.Key("tx", "counters"), Records: e.ks.Key("tx", "rec")}
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// prepared is a campaign ready to render: decoded once per engine.
type prepared struct {
	spec    *campaign.Spec
	tmpl    *message.Template
	envFrom string
}

type campaignCache struct {
	store *store.Store
	mu    sync.Mutex
	m     map[string]*prepared
}

func (c *campaignCache) get(ctx context.Context, id string) (*prepared, error) {
	if id == "" {
		return nil, fmt.Errorf("job has no campaign and no message")
	}
	c.mu.Lock()
	p, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	raw, err := c.store.Spec(ctx, id)
	if err != nil {
		return nil, err
	}
	var spec campaign.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("campaign %s: decode stored definition: %w", id, err)
	}
	tmpl, err := message.Compile(spec.Parts())
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	p = &prepared{spec: &spec, tmpl: tmpl, envFrom: spec.ReturnPath}
	if p.envFrom == "" {
		p.envFrom = tmpl.FromAddress()
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*prepared{}
	}
	c.m[id] = p
	c.mu.Unlock()
	return p, nil
}
