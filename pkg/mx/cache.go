package mx

import (
	"container/list"
	"context"
	"sync"
	"time"
)

type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

type entry struct {
	key     cacheKey
	ans     answer
	expires time.Time
}

// call is one query in flight; concurrent lookups of the same name and
// type wait for it instead of sending their own (a campaign start sends
// thousands of jobs to one domain at once).
type call struct {
	done chan struct{}
	ans  answer
	err  error
}

// cache is a size-bounded LRU of answers with per-entry expiry.
type cache struct {
	mu       sync.Mutex
	max      int
	lru      *list.List // front: most recently used *entry
	items    map[cacheKey]*list.Element
	inflight map[cacheKey]*call
}

func newCache(max int) *cache {
	return &cache{max: max, lru: list.New(), items: map[cacheKey]*list.Element{}, inflight: map[cacheKey]*call{}}
}

// get returns a live entry; caller holds c.mu.
func (c *cache) get(k cacheKey, now time.Time) (answer, bool) {
	el, ok := c.items[k]
	if !ok {
		return answer{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		return answer{}, false
	}
	c.lru.MoveToFront(el)
	return e.ans, true
}

// put stores an answer, evicting the least recently used; caller holds c.mu.
func (c *cache) put(k cacheKey, a answer, expires time.Time) {
	if el, ok := c.items[k]; ok {
		e := el.Value.(*entry)
		e.ans, e.expires = a, expires
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(&entry{key: k, ans: a, expires: expires})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*entry).key)
	}
}

// Len is the number of cached answers, live or not yet evicted.
func (c *cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// cached returns a live cached answer without querying.
func (d *DNS) cached(name string, qtype uint16) (answer, bool) {
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	return d.cache.get(cacheKey{name, qtype}, d.now())
}

// lookup answers name/qtype from the cache or, once for all concurrent
// callers, from DNS. Transient failures are not cached.
func (d *DNS) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	k := cacheKey{name, qtype}
	c := d.cache
	c.mu.Lock()
	if a, ok := c.get(k, d.now()); ok {
		c.mu.Unlock()
		return a, nil
	}
	cl, ok := c.inflight[k]
	if !ok {
		cl = &call{done: make(chan struct{})}
		c.inflight[k] = cl
		// The query outlives a caller that gives up, so the others waiting
		// on it are not failed by one cancelled context; it is bounded by
		// the client timeouts.
		go d.fill(context.WithoutCancel(ctx), k, cl)
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.ans, cl.err
	case <-ctx.Done():
		return answer{}, &Error{Domain: trimDot(name), Enhanced: "4.4.3", Msg: "DNS lookup abandoned", Err: ctx.Err()}
	}
}

func (d *DNS) fill(ctx context.Context, k cacheKey, cl *call) {
	a, ttl, err := d.resolve(ctx, k.name, k.qtype)
	c := d.cache
	c.mu.Lock()
	delete(c.inflight, k)
	if err == nil && ttl > 0 {
		c.put(k, a, d.now().Add(ttl))
	}
	c.mu.Unlock()
	cl.ans, cl.err = a, err
	close(cl.done)
}
