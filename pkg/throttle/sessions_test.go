package throttle_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/mxsim"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// sender is an engine's delivery side for the session tests: its own
// throttle and SMTP pool, sharing only Redis with the others, and
// workers that admit, send and report as the engine's do.
type sender struct {
	name string
	l    *throttle.Limiter
	smtp *deliver.SMTP
	sent atomic.Int64
	last atomic.Pointer[throttle.Sessions]
	stop atomic.Bool
	wg   sync.WaitGroup
}

func newSender(t *testing.T, ks keyspace.Space, name string, lim config.Limits) *sender {
	t.Helper()
	l, err := throttle.New(throttle.Options{Redis: redistest.Client(t), Space: ks, Engine: name,
		Config: config.Throttle{Default: lim, ProvidersFile: "testdata/providers.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{name: name, l: l, smtp: deliver.NewSMTP(deliver.SMTPConfig{Hostname: "mta.sluice.test", MaxIdlePerHost: 10})}
	t.Cleanup(s.close)
	return s
}

// close stops the workers, then the pool, then the throttle (an engine's
// shutdown order).
func (s *sender) close() {
	s.halt()
	s.smtp.Close()
	s.l.Close()
}

// start runs n workers sending to key at host until halt.
func (s *sender) start(key string, port, n int) {
	ctx := context.Background()
	s.stop.Store(false)
	dest := deliver.Destination{Domain: "sess.test", Key: key, Hosts: []deliver.Host{{Name: "127.0.0.1", Port: port, Routed: true}}}
	for w := range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; !s.stop.Load(); i++ {
				p, at, err := s.l.Admit(ctx, key, "marketing")
				if p == nil {
					if err == nil {
						time.Sleep(min(time.Until(at), 20*time.Millisecond))
					}
					continue
				}
				s.last.Store(p.Sessions)
				d := dest
				d.Slots = p.Sessions
				out := s.smtp.Send(ctx, d, deliver.Envelope{From: "news@sluice.test", To: fmt.Sprintf("%s.%d.%d@sess.test", s.name, w, i)},
					[]byte("From: news@sluice.test\r\nSubject: sessions\r\n\r\nhello\r\n"))
				if out.Status == outcome.Delivered {
					s.sent.Add(1)
				}
				p.Done(out)
			}
		}()
	}
}

// halt stops the workers after their sends; their sessions stay pooled.
func (s *sender) halt() {
	s.stop.Store(true)
	s.wg.Wait()
}

// open is how many sessions s has open toward the key it sent to.
func (s *sender) open() int { return s.last.Load().Open() }

// watch samples the sessions the provider has open every millisecond
// and remembers the most seen since the last reset.
type watch struct {
	sim  *mxsim.Server
	most atomic.Int64
	done chan struct{}
}

func watchSessions(t *testing.T, sim *mxsim.Server) *watch {
	w := &watch{sim: sim, done: make(chan struct{})}
	go func() {
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tk.C:
			}
			if n := int64(sim.Stats().Open); n > w.most.Load() {
				w.most.Store(n)
			}
		}
	}()
	t.Cleanup(func() { close(w.done) })
	return w
}

func (w *watch) reset() int { return int(w.most.Swap(int64(w.sim.Stats().Open))) }

// waitUntil polls ok for up to within and returns how long it took
// (within, with false, when it never held).
func waitUntil(within time.Duration, ok func() bool) (time.Duration, bool) {
	t0 := time.Now()
	for time.Since(t0) < within {
		if ok() {
			return time.Since(t0), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return within, false
}

// TestEnginesHoldTheConnectionLimitAsSessions: two engines (each its own
// throttle and SMTP pool, sharing one redis-server) keep at most the
// key's connection limit of sessions open at the provider, idle pooled
// ones included, and both get to send; a cut of the limit (an operator's
// limits set) closes the excess idle sessions within seconds; a stopped
// engine's slots come back to the other once its lease lapses.
func TestEnginesHoldTheConnectionLimitAsSessions(t *testing.T) {
	const conns = 4
	ks := keyspace.Space(redistest.Prefix(t))
	sim := sim(t, "127.0.0.1:0", mxsim.Config{Message: func(string, []string, []byte) error {
		time.Sleep(5 * time.Millisecond) // the provider's time per message
		return nil
	}})
	w := watchSessions(t, sim)
	lim := config.Limits{StartRate: 1e4, MaxRate: 1e4, Burst: 100, MaxConnections: conns, MaxMessagesPerConnection: 1000}
	a, b := newSender(t, ks, "e1", lim), newSender(t, ks, "e2", lim)

	a.start("k", sim.Port(), 8)
	time.Sleep(300 * time.Millisecond) // e1 alone takes every slot
	b.start("k", sim.Port(), 8)
	took, ok := waitUntil(5*time.Second, func() bool { return b.sent.Load() > 0 })
	if !ok {
		t.Fatalf("e2 sent nothing in 5 s while e1 held the slots (e1 sent %d)", a.sent.Load())
	}
	time.Sleep(2 * time.Second)
	a.halt()
	b.halt()
	most := w.reset()
	t.Logf("both engines: e1 sent %d, e2 %d (its first after %v); most sessions open at the provider %d, sessions %d; pooled e1 %d, e2 %d",
		a.sent.Load(), b.sent.Load(), took.Round(time.Millisecond), most, sim.Stats().Sessions, a.open(), b.open())
	if most > conns {
		t.Errorf("the provider saw %d sessions open at once, want at most %d", most, conns)
	}
	if _, ok := waitUntil(time.Second, func() bool { return a.open()+b.open() == sim.Stats().Open }); !ok || sim.Stats().Open == 0 {
		t.Errorf("engines count %d + %d sessions open, the provider %d (want equal, pooled ones kept)", a.open(), b.open(), sim.Stats().Open)
	}

	// An operator cuts the limit: idle sessions past it close.
	const cut = 2
	if err := throttle.Set(context.Background(), redistest.Client(t), ks, "k", 0, cut, 0); err != nil {
		t.Fatal(err)
	}
	took, ok = waitUntil(5*time.Second, func() bool { return sim.Stats().Open <= cut })
	t.Logf("limit cut to %d: the provider's open sessions fell from %d to %d within %v (e1 %d, e2 %d)",
		cut, most, sim.Stats().Open, took.Round(time.Millisecond), a.open(), b.open())
	if !ok {
		t.Fatalf("5 s after the cut to %d the provider still has %d sessions open", cut, sim.Stats().Open)
	}
	w.reset()
	a.start("k", sim.Port(), 8)
	b.start("k", sim.Port(), 8)
	time.Sleep(1500 * time.Millisecond)
	b.halt()
	if most := w.reset(); most > cut {
		t.Errorf("after the cut the provider saw %d sessions open at once, want at most %d", most, cut)
	}

	// e2 stops (its throttle and pool gone, as after a kill: the kernel
	// closes its sockets, its lease stays in Redis until it lapses).
	b.close()
	held := a.open()
	took, ok = waitUntil(8*time.Second, func() bool { return a.open() == cut })
	t.Logf("e2 stopped with e1 holding %d: e1 holds all %d after %v", held, cut, took.Round(time.Millisecond))
	if !ok {
		t.Errorf("8 s after e2 stopped, e1 has %d sessions of %d", a.open(), cut)
	}
	a.halt()
	if most := w.reset(); most > cut {
		t.Errorf("after e2 stopped the provider saw %d sessions open at once, want at most %d", most, cut)
	}
}
