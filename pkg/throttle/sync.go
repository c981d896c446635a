package throttle

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// syncEvery is how often an engine reports every active key and
	// takes in the shared state: operator changes and other engines'
	// decisions reach it within this.
	syncEvery = 250 * time.Millisecond
	// activeFor: a key asked for within this is kept in sync (as is one
	// with attempts in progress or outcomes to report).
	activeFor = time.Second
	// evictAfter: a key unused this long is forgotten locally (its shared
	// state stays in Redis).
	evictAfter = 5 * time.Minute
	// loopIdle: the sync loop stops when no key was active this long,
	// and starts again with the next Admit.
	loopIdle = 10 * time.Second
)

func (l *Limiter) syncLoop() {
	defer l.wg.Done()
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.syncOnce() > 0 {
			last = time.Now()
			continue
		}
		if time.Since(last) > loopIdle {
			l.mu.Lock()
			l.loop = false
			l.mu.Unlock()
			return
		}
	}
}

// syncOnce steps every active key in one pipeline and returns how many.
func (l *Limiter) syncOnce() int {
	now := l.now()
	var active []*bucket
	skipped := 0
	l.mu.Lock()
	for k, b := range l.buckets {
		b.mu.Lock()
		idle := now.Sub(b.lastUse)
		// A key with sessions open renews its slots' lease.
		busy := b.inUse > 0 || b.open > 0 || b.counts != (report{})
		b.mu.Unlock()
		switch {
		case (busy || idle < activeFor) && !b.stepMu.TryLock():
			skipped++ // a step of it is under way
		case busy || idle < activeFor:
			active = append(active, b) // stepMu held until its result is in
		case idle > evictAfter:
			delete(l.buckets, k)
		}
	}
	l.mu.Unlock()
	if len(active) == 0 {
		return skipped
	}
	qs := make([]stepReq, len(active))
	for i, b := range active {
		b.mu.Lock()
		qs[i] = stepReq{report: b.snapshot(now)}
		b.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	steps.WithLabelValues("sync").Add(float64(len(active)))
	cmds, err := l.pipeSteps(ctx, active, qs)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		if err = stepScript.Load(ctx, l.rdb).Err(); err == nil {
			cmds, err = l.pipeSteps(ctx, active, qs)
		}
	}
	if err == nil {
		l.indexBuckets(ctx, active...)
	}
	now = l.now()
	for i, b := range active {
		var res stepRes
		e := err
		if e == nil {
			var v []any
			if v, e = cmds[i].Slice(); e == nil {
				res, e = parseStep(v)
			}
		}
		b.mu.Lock()
		if e != nil {
			b.counts.add(qs[i].report)
		} else {
			l.applyStep(b, res, now, "")
		}
		b.mu.Unlock()
		b.stepMu.Unlock()
		if e != nil {
			l.log.Error("throttle sync", "key", b.key, "err", e)
		}
	}
	return len(active) + skipped
}

func (l *Limiter) pipeSteps(ctx context.Context, bs []*bucket, qs []stepReq) ([]*redis.Cmd, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(bs))
	for i, b := range bs {
		cmds[i] = stepScript.EvalSha(ctx, pipe, l.stepKeys(b.key), l.stepArgs(b, qs[i])...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}
