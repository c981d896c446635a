package faulttest

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestKill9 kills the engine with SIGKILL at 5 random moments of a
// 3,000-recipient campaign and restarts it (same consumer) each time.
// Nothing may be lost, and a recipient may get one extra copy per kill at
// most, and only from a kill that caught its job in flight: pending with
// the dead engine and already accepted by the receiver.
func TestKill9(t *testing.T) {
	const n, kills = 3000, 5
	const delay = 50 * time.Millisecond // 16 sessions: ~300 messages/s, ~10 s
	e := newEnv(t, n)
	e.rx.delay.Store(int64(delay))
	e.launch()
	cfg := e.config(conf{consumer: "fault", workers: 16})
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	began := time.Now()
	eng := e.startEngine(cfg, "fault")

	var inflight []int
	var recover []time.Duration
	extra := map[string]int{} // copies excused by kills, per recipient
	for k := 0; k < kills; k++ {
		time.Sleep(700*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond))))
		if e.status().Queued == 0 {
			t.Logf("campaign finished before kill %d", k+1)
			break
		}
		eng.kill()
		held, err := e.pending("fault")
		if err != nil {
			t.Fatal(err)
		}
		// The dead engine's last sessions are still in their reply delay:
		// the receiver counts those copies (it accepted them).
		time.Sleep(delay + 300*time.Millisecond)
		got, seen, in := e.rx.counts(), map[string]bool{}, 0
		for _, a := range held {
			if got[a] > 0 && !seen[a] {
				seen[a] = true
				extra[a]++
				in++
			}
		}
		inflight = append(inflight, in)
		before, restarted := e.rx.total(), time.Now()
		eng = e.startEngine(cfg, "fault")
		waitFor(10*time.Second, func() bool { return e.rx.total() > before })
		recover = append(recover, time.Since(restarted).Round(10*time.Millisecond))
	}
	finished := e.waitFinished(30 * time.Second)
	e.settle(300*time.Millisecond, 3*time.Second)
	got := e.check(func(a string) int { return 1 + extra[a] })
	sum := 0
	for _, x := range inflight {
		sum += x
	}
	t.Logf("kill9: lost=%d duplicates=%d inflight_at_kills=%v max_copies=%d recover=%v took=%v seed=%d",
		got.lost, got.duplicates, inflight, got.maxCopies, recover, time.Since(began).Round(100*time.Millisecond), seed)
	if !finished {
		t.Errorf("campaign not finished 30s after the last restart: %+v", e.status())
	}
	if got.lost != 0 {
		t.Errorf("%d recipients lost", got.lost)
	}
	if got.duplicates > sum {
		t.Errorf("%d duplicates, but only %d jobs were in flight at the kills", got.duplicates, sum)
	}
	if len(got.over) > 0 {
		t.Errorf("recipients with more copies than one plus the kills that caught them in flight: %v", got.over)
	}
	e.exact()
}

// TestSIGTERMRestart stops the engine with SIGTERM in the middle of a
// campaign to a slow receiver (200 ms per message) and starts it again
// with the same consumer name: it must drain (let its attempts finish and
// settle), exit 0, and no recipient may get two copies.
func TestSIGTERMRestart(t *testing.T) {
	const n = 400
	e := newEnv(t, n)
	e.rx.delay.Store(int64(200 * time.Millisecond))
	e.launch()
	cfg := e.config(conf{consumer: "fault", workers: 64})
	eng := e.startEngine(cfg, "fault")
	if !waitFor(10*time.Second, func() bool { return e.rx.total() >= n/4 }) {
		t.Fatalf("receiver got only %d messages in 10s", e.rx.total())
	}
	atTerm := e.rx.total()
	// delivery.drain_timeout is 30s by default.
	code, drain := eng.term(35 * time.Second)
	held, err := e.pendingCount("fault")
	if err != nil {
		t.Fatal(err)
	}
	e.settle(300*time.Millisecond, 2*time.Second)
	afterExit := e.rx.total()
	eng = e.startEngine(cfg, "fault")
	finished := e.waitFinished(15 * time.Second)
	e.settle(500*time.Millisecond, 3*time.Second)
	got := e.check(one)
	t.Logf("sigterm: lost=%d duplicates=%d exit=%d drain=%v received_at_term=%d after_exit=%d pending_after_exit=%d messages=%d recipients=%d",
		got.lost, got.duplicates, code, drain.Round(10*time.Millisecond), atTerm, afterExit, held, e.rx.total(), n)
	if code != 0 {
		t.Errorf("engine exited with %d after SIGTERM, want 0", code)
	}
	if held != 0 {
		t.Errorf("%d jobs left pending by a drained engine: it should settle what it attempted and give back the rest", held)
	}
	if !finished {
		t.Errorf("campaign not finished 15s after the restart: %+v", e.status())
	}
	if got.lost != 0 || got.duplicates != 0 {
		t.Errorf("lost %d, duplicates %d (max %d copies, e.g. %v); want none", got.lost, got.duplicates, got.maxCopies, got.over)
	}
	e.exact()
}

// TestRedisOutage stops redis-server (SIGTERM: AOF flushed) for 5 s in the
// middle of a campaign and starts it again on the same port and
// directory. The engine must wait it out without exiting, and the campaign
// must end with every recipient delivered once and nothing pending.
func TestRedisOutage(t *testing.T) {
	const n = 3000
	const outage = 5 * time.Second
	e := newEnv(t, n)
	e.rx.delay.Store(int64(30 * time.Millisecond))
	e.launch()
	eng := e.startEngine(e.config(conf{consumer: "fault", workers: 16}), "fault")
	if !waitFor(20*time.Second, func() bool { return e.rx.total() >= n/6 }) {
		t.Fatalf("receiver got only %d messages in 20s", e.rx.total())
	}
	atStop := e.rx.total()
	if code := e.healthz("fault"); code != http.StatusOK {
		t.Errorf("/healthz before the outage: %d, want 200", code)
	}
	if err := e.redis.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage / 2)
	if code := e.healthz("fault"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with Redis down: %d, want 503", code)
	}
	time.Sleep(outage / 2)
	duringOutage := e.rx.total() - atStop
	if err := e.redis.Start(); err != nil {
		t.Fatal(err)
	}
	aliveAfterOutage := eng.alive()
	back := time.Now()
	finished := e.waitFinished(30 * time.Second)
	took := time.Since(back)
	e.settle(300*time.Millisecond, 3*time.Second)
	got := e.check(one)
	held, err := e.pendingCount("fault")
	if err != nil {
		t.Fatal(err)
	}
	alive := eng.alive()
	t.Logf("redis: lost=%d duplicates=%d pending_at_end=%d engine_alive=%v received_before_outage=%d during=%d finished_after=%v (finished=%v)",
		got.lost, got.duplicates, held, alive && aliveAfterOutage, atStop, duringOutage, took.Round(100*time.Millisecond), finished)
	if !aliveAfterOutage || !alive {
		t.Errorf("the engine exited (alive after the outage: %v, at the end: %v)", aliveAfterOutage, alive)
	}
	if !finished {
		t.Errorf("campaign not finished 30s after Redis came back: %+v", e.status())
	}
	if code := e.healthz("fault"); code != http.StatusOK {
		t.Errorf("/healthz after the outage: %d, want 200", code)
	}
	if got.lost != 0 || got.duplicates != 0 {
		t.Errorf("lost %d, duplicates %d (max %d copies, e.g. %v); want none", got.lost, got.duplicates, got.maxCopies, got.over)
	}
	e.exact()
}

// TestTakeover kills engine "a" (kill -9) while it holds about 1,000 jobs
// whose sessions hang at DATA; engine "b" must take all of them over
// within reclaim_idle + 10 s and deliver them.
func TestTakeover(t *testing.T) {
	const n = 1000
	const idle = 10 * time.Second
	e := newEnv(t, n)
	e.launch()
	// reclaim_idle must cover the longest attempt: 1s + 2s + 6s.
	c := conf{consumer: "a", workers: n, conns: n, reclaimIdle: idle,
		connect: time.Second, command: 2 * time.Second, data: 6 * time.Second}
	e.rx.holdAll()
	a := e.startEngine(e.config(c), "a")
	// Kill a once it holds every job, well before its 6 s DATA timeout.
	waitFor(4*time.Second, func() bool { p, err := e.pendingCount("a"); return err == nil && p >= n })
	a.kill()
	killed := time.Now()
	held, err := e.pending("a")
	if err != nil {
		t.Fatal(err)
	}
	e.rx.release() // a's hung sessions fail with 451, new ones succeed
	got, in := e.rx.counts(), 0
	for _, addr := range held {
		if got[addr] > 0 {
			in++
		}
	}
	c.consumer = "b"
	e.startEngine(e.config(c), "b")
	takeover := time.Duration(-1) // never
	finished := waitFor(idle+10*time.Second, func() bool {
		if takeover < 0 {
			if p, err := e.pendingCount("a"); err == nil && p == 0 {
				takeover = time.Since(killed)
			}
		}
		return e.status().Queued == 0
	})
	done := time.Since(killed)
	e.settle(300*time.Millisecond, 3*time.Second)
	tl := e.check(func(a string) int {
		if got[a] > 0 {
			return 2
		}
		return 1
	})
	left, _ := e.pendingCount("a")
	took := "never"
	if takeover >= 0 {
		took = takeover.Round(100 * time.Millisecond).String()
	}
	t.Logf("takeover: held_by_a=%d inflight_at_kill=%d taken_over_in=%s finished_in=%v (finished=%v) left_with_a=%d lost=%d duplicates=%d",
		len(held), in, took, done.Round(100*time.Millisecond), finished, left, tl.lost, tl.duplicates)
	if len(held) == 0 {
		t.Fatal("engine a held no jobs when killed: the scenario did not happen")
	}
	if !finished {
		t.Errorf("campaign not finished %v after the kill (reclaim_idle %v + 10s): %+v, %d jobs still with a",
			idle+10*time.Second, idle, e.status(), left)
	}
	if tl.lost != 0 || tl.duplicates > in || len(tl.over) > 0 {
		t.Errorf("lost %d, duplicates %d (in flight at the kill: %d, over: %v)", tl.lost, tl.duplicates, in, tl.over)
	}
	e.exact()
}
