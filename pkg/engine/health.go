package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// opTimeout bounds one Redis step of a job (settle, postpone, park): a
// frozen Redis must not hold a worker longer before it tries again.
const opTimeout = 5 * time.Second

// health is whether this engine can reach Redis, as its last Redis step
// found out.
type health struct {
	mu   sync.Mutex
	err  error     // nil while Redis answers
	when time.Time // when err was first seen
}

func (h *health) failed(err error) {
	h.mu.Lock()
	if h.err == nil {
		h.when = time.Now()
	}
	h.err = err
	h.mu.Unlock()
}

func (h *health) ok() {
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
}

func (h *health) state() (error, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err, h.when
}

// Healthy reports why this engine cannot work right now (Redis does not
// answer), or nil. /healthz serves it.
func (e *Engine) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := e.Redis.Ping(ctx).Err(); err != nil {
		e.health.failed(err)
		return fmt.Errorf("redis unreachable: %w", err)
	}
	if err, since := e.health.state(); err != nil {
		return fmt.Errorf("redis failing since %s: %w", since.Format(time.RFC3339), err)
	}
	return nil
}

// waitHealthy holds a reader while Redis is unreachable: an engine that
// cannot settle takes no new jobs. It reports false when ctx ended.
func (e *Engine) waitHealthy(ctx context.Context) bool {
	for {
		if err, _ := e.health.state(); err == nil {
			return true
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := e.Redis.Ping(pctx).Err()
		cancel()
		if err == nil {
			e.health.ok()
			e.Log.Info("redis answers again; reading jobs")
			return true
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return false
		}
	}
}

// durably runs op, a Redis step that lets go of job d, until it succeeds:
// an outage is waited out with backoff, bounded only by hard (the end of
// a drain). It reports false when it gave up; the job then stays pending
// for this engine's next start or another engine (at-least-once).
func (e *Engine) durably(hard context.Context, what string, d streams.Delivery, op func(context.Context) error) bool {
	wait := 100 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(hard, opTimeout)
		err := op(ctx)
		cancel()
		if err == nil {
			if try > 1 {
				e.health.ok()
				e.Log.Info(what+" done after Redis came back", "job", d.ID, "tries", try)
			}
			return true
		}
		if hard.Err() != nil || !retryable(err) {
			e.Log.Error(what+" not done; job stays pending", "job", d.ID, "err", err)
			return false
		}
		e.health.failed(err)
		if try == 1 || try%20 == 0 {
			e.Log.Warn(what+" failed; retrying until Redis answers", "job", d.ID, "tries", try, "err", err)
		}
		sleep(hard, wait)
		wait = min(2*wait, 5*time.Second)
	}
}

// retryable tells an outage (worth waiting out) from a failure that
// trying again cannot mend: Redis answering with an error other than a
// transient state (a script bug, a wrong type).
func retryable(err error) bool {
	if errors.Is(err, streams.ErrPacked) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		for _, p := range transientReplies {
			if strings.HasPrefix(rerr.Error(), p) {
				return true
			}
		}
		return false
	}
	return true // connection refused or reset, timeouts, pool exhausted
}

// transientReplies are Redis error replies that pass by themselves.
var transientReplies = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS", "MOVED", "ASK"}
