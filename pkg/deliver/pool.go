package deliver

import (
	"time"
)

// The pool keeps idle sessions per source and destination host
// (Source.poolKey(Host.Addr())), most
// recently used last. A session is pooled only after a clean transaction
// and only while it has carried fewer than its limit of messages; idle
// ones are closed after IdleTimeout, and at most MaxIdlePerHost wait per
// host.

// take returns a pooled session to key fit for this send, or nil.
func (s *SMTP) take(key string, needTLS bool, limit int) *conn {
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
	if s.closed || c.sent >= limit || len(s.idle[c.key]) >= s.cfg.MaxIdlePerHost {
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

// retireLocked says QUIT on a healthy session in the background; Close
// waits for those begun before it.
func (s *SMTP) retireLocked(c *conn) {
	if s.closed {
		go c.quit()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.quit()
	}()
}

// janitor closes sessions idle longer than IdleTimeout, so sluice does not
// hold connections a receiver would drop anyway (RFC 5321 §4.5.3.2.7: the
// server side times out after 5 minutes).
func (s *SMTP) janitor(stop chan struct{}) {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			for key, list := range s.idle {
				keep := list[:0]
				for _, c := range list {
					if now.Sub(c.idleSince) > s.cfg.IdleTimeout {
						s.retireLocked(c)
					} else {
						keep = append(keep, c)
					}
				}
				if len(keep) == 0 {
					delete(s.idle, key)
				} else {
					s.idle[key] = keep
				}
			}
			s.mu.Unlock()
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
