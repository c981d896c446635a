package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// The pool keeps idle sessions per source and destination host
// (Source.poolKey(Host.Addr())), most
// recently used last. A session is pooled only after a clean transaction
// and only while it has carried fewer than its limit of messages; idle
// ones are closed after IdleTimeout, and at most MaxIdlePerHost wait per
// host.
//
// A send may carry Slots (Destination.Slots): the connection slots of its
// throttle key, shared with other engines. A session then takes a slot
// from dial to close, busy or idle, and is pooled and reused only with the
// same Slots; sessions past the slots held (Slots.Over) are not pooled
// again, and idle ones close within trimEvery.

// Slots accounts the sessions open toward one connection limit (a
// throttle key, for every engine together); *throttle.Sessions
// implements it. A nil Slots limits nothing.
type Slots interface {
	// Acquire takes a slot for a session about to be dialled; false when
	// none is free.
	Acquire() bool
	// Release frees the slot of a session that closed or never opened.
	Release()
	// Over is how many of the open sessions are past the slots held now.
	Over() int
}

const (
	// trimEvery is how often idle sessions past their slots are closed.
	trimEvery = 200 * time.Millisecond
	// slotWait is the longest a send waits for a slot to free (a session
	// of its key closing); past it the attempt is deferred.
	slotWait = 3 * time.Second
	// slotPoll is how often a waiting send looks for a free slot.
	slotPoll = 5 * time.Millisecond
)

// take returns a pooled session to key fit for this send, or nil.
func (s *SMTP) take(key string, needTLS bool, limit int, slots Slots) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.idle[key]
	now := time.Now()
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		switch {
		case now.Sub(c.idleSince) > s.cfg.IdleTimeout || c.sent >= limit:
			list = append(list[:i], list[i+1:]...)
			s.retireLocked(c)
		case needTLS && !c.tls:
			// A plaintext session (STARTTLS fell back) must not carry a
			// message that requires TLS.
		case c.slots != slots:
			// Another key's slot.
		default:
			s.idle[key] = append(list[:i], list[i+1:]...)
			return c
		}
	}
	s.idle[key] = list
	return nil
}

// put returns a session after a clean transaction, or retires it.
func (s *SMTP) put(c *conn, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || c.sent >= limit || len(s.idle[c.key]) >= s.cfg.MaxIdlePerHost || s.excessLocked(c.slots) > 0 {
		s.retireLocked(c)
		return
	}
	c.idleSince = time.Now()
	s.idle[c.key] = append(s.idle[c.key], c)
	if s.stop == nil {
		s.stop = make(chan struct{})
		s.wg.Add(1)
		go s.janitor(s.stop)
	}
}

// excessLocked is how many sessions of slots should still close: those
// past its slots, less those already saying QUIT.
func (s *SMTP) excessLocked(slots Slots) int {
	if slots == nil {
		return 0
	}
	return slots.Over() - s.quitting[slots]
}

// slot gets slots a free slot for a session to h, closing an idle
// session of the same slots (to another host, or without the TLS this
// send needs) to make room, or waiting up to slotWait for one to close.
func (s *SMTP) slot(ctx context.Context, slots Slots, h Host) (outcome.Outcome, bool) {
	if slots == nil {
		return outcome.Outcome{}, true
	}
	deadline := time.Now().Add(slotWait)
	for !slots.Acquire() {
		if c := s.evict(slots); c != nil {
			s.retireNow(c)
			continue
		}
		if err := ctx.Err(); err != nil {
			return canceled(outcome.StageConnect, h.Name, err), false
		}
		if time.Now().After(deadline) {
			return outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeConnection, Stage: outcome.StageConnect, Host: h.Name,
				Enhanced: "4.4.5", Text: fmt.Sprintf("no connection slot free for %s within %s: the key's sessions are all busy", h.Name, slotWait)}, false
		}
		t := time.NewTimer(slotPoll)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return outcome.Outcome{}, true
}

// evict takes the longest idle session of slots out of the pool, or nil;
// the caller retires it (retireNow).
func (s *SMTP) evict(slots Slots) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.oldestLocked(slots)
	if c != nil {
		s.unpoolLocked(c)
		s.quitting[slots]++
	}
	return c
}

// oldestLocked is the longest idle session of slots, or nil.
func (s *SMTP) oldestLocked(slots Slots) *conn {
	var oldest *conn
	for _, list := range s.idle {
		for _, c := range list {
			if c.slots == slots && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
				oldest = c
			}
		}
	}
	return oldest
}

// unpoolLocked removes c from its idle list.
func (s *SMTP) unpoolLocked(c *conn) {
	list := s.idle[c.key]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.idle, c.key)
	} else {
		s.idle[c.key] = list
	}
}

// retireNow says QUIT on c, counted in quitting by the caller, and waits.
func (s *SMTP) retireNow(c *conn) {
	c.quit()
	s.mu.Lock()
	s.quitDoneLocked(c)
	s.mu.Unlock()
}

func (s *SMTP) quitDoneLocked(c *conn) {
	if c.slots == nil {
		return
	}
	if s.quitting[c.slots]--; s.quitting[c.slots] <= 0 {
		delete(s.quitting, c.slots)
	}
}

// retireLocked says QUIT on a healthy session in the background; Close
// waits for those begun before it.
func (s *SMTP) retireLocked(c *conn) {
	if c.slots != nil {
		s.quitting[c.slots]++
	}
	if !s.closed {
		s.wg.Add(1)
	}
	closed := s.closed
	go func() {
		if !closed {
			defer s.wg.Done()
		}
		s.retireNow(c)
	}()
}

// janitor closes sessions idle longer than IdleTimeout, so sluice does not
// hold connections a receiver would drop anyway (RFC 5321 §4.5.3.2.7: the
// server side times out after 5 minutes), and idle sessions past their
// key's connection slots (Slots.Over), longest idle first.
func (s *SMTP) janitor(stop chan struct{}) {
	defer s.wg.Done()
	t := time.NewTicker(max(min(s.cfg.IdleTimeout/4, trimEvery), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			s.sweepLocked(now)
			s.mu.Unlock()
		}
	}
}

// sweepLocked is one round of the janitor.
func (s *SMTP) sweepLocked(now time.Time) {
	excess := map[Slots]int{}
	for key, list := range s.idle {
		keep := list[:0]
		for _, c := range list {
			if now.Sub(c.idleSince) > s.cfg.IdleTimeout {
				s.retireLocked(c)
				continue
			}
			if c.slots != nil {
				if _, ok := excess[c.slots]; !ok {
					excess[c.slots] = s.excessLocked(c.slots)
				}
			}
			keep = append(keep, c)
		}
		if len(keep) == 0 {
			delete(s.idle, key)
		} else {
			s.idle[key] = keep
		}
	}
	for slots, n := range excess {
		for ; n > 0; n-- {
			c := s.oldestLocked(slots)
			if c == nil {
				break
			}
			s.unpoolLocked(c)
			s.retireLocked(c)
		}
	}
}

// track counts live sessions per host and, when they come from a
// Source, per (source, host) too.
func (s *SMTP) track(hostKey, poolKey string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []string{hostKey}
	if poolKey != hostKey {
		keys = append(keys, poolKey)
	}
	for _, k := range keys {
		if s.live[k] += delta; s.live[k] <= 0 {
			delete(s.live, k)
		}
	}
}

// Open is the number of live sessions to hostAddr (Host.Addr(), "name:port"),
// busy or idle, from every source; the throttle caps connections per
// provider with it.
func (s *SMTP) Open(hostAddr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[hostAddr]
}

// OpenFrom is the number of live sessions from src to hostAddr, busy or
// idle: what a per-(source, provider) connection limit counts. For the
// zero Source it is Open's total.
func (s *SMTP) OpenFrom(src Source, hostAddr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[src.poolKey(hostAddr)]
}

func (s *SMTP) tlsBroken(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.noTLS[key]
	if ok && time.Now().After(until) {
		delete(s.noTLS, key)
		return false
	}
	return ok
}

func (s *SMTP) rememberTLSBroken(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noTLS[key] = time.Now().Add(s.cfg.TLSFallbackTTL)
}

// Close says QUIT on every pooled session and waits for it; sessions in
// use are closed as their sends finish. Send still works after Close but
// no longer pools.
func (s *SMTP) Close() {
	s.mu.Lock()
	for key, list := range s.idle {
		for _, c := range list {
			s.retireLocked(c)
		}
		delete(s.idle, key)
	}
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
	s.closed = true // after the retirements above, which Close waits for
	s.mu.Unlock()
	s.wg.Wait()
}
