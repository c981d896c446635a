package throttle

import (
	"context"
	"time"
)

// Connection slots: a key's connection limit counts SMTP sessions, from
// dial to close, busy or idle in a pool, over every engine together —
// what a provider counts. Each engine holds some of the key's slots in
// Redis (its lease, in the engines' hash beside the key's state: step.lua)
// and opens sessions only within what it holds; the step that records
// what an engine holds grants it only what the others leave free, so the
// engines together never hold more than the limit. An engine gives slots
// back by closing sessions first and reporting fewer at its next step
// (every syncEvery while it has any open); when another engine is
// refused a connection, or the limit falls below what the engines hold,
// each engine's share falls to a max-min fair split of the limit (by
// what each used lately), and sessions past it close (idle ones within
// deliver's trim interval, busy ones as they finish). A lease not
// renewed for engineLive ends: a dead engine's slots come back to the
// others, and an engine that could not renew for leaseFresh opens no
// session and closes its idle ones, so its slots are free by then.

// leaseFresh is how long the slots an engine holds count without a step:
// past it the engine closes its idle sessions and dials none, well
// before the others may take its slots (engineLive).
const leaseFresh = engineLive / 2

// starveStep: an engine refused a connection for want of a slot reports
// it at once (at most this often per key), rather than at its next sync:
// the engines holding more than their share hear of it sooner.
const starveStep = 50 * time.Millisecond

// Sessions counts the SMTP sessions one bucket has open in this engine
// and holds them to the slots the engine leases (deliver.Slots). Its
// methods are safe on nil (nothing counted, no limit).
type Sessions struct{ b *bucket }

// Acquire takes a slot for a session about to be dialled; false when the
// engine holds none free.
func (s *Sessions) Acquire() bool {
	if s == nil {
		return true
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open >= b.sessLimit(b.share, b.clock()) {
		return false
	}
	b.open++
	return true
}

// Release frees the slot of a session that closed, or was never opened.
func (s *Sessions) Release() {
	if s == nil {
		return
	}
	b := s.b
	b.mu.Lock()
	b.open--
	b.mu.Unlock()
}

// Over is how many of the sessions open are past the slots this engine
// holds now: as many idle ones should close, and busy ones not be pooled.
func (s *Sessions) Over() int {
	if s == nil {
		return 0
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.open-b.sessLimit(max(b.keep, b.share), b.clock()), 0)
}

// Open is how many sessions are open (busy or idle).
func (s *Sessions) Open() int {
	if s == nil {
		return 0
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.b.open
}

// sessLimit is n (the slots the engine may dial into, or keep), none
// once its lease is no longer fresh, fewer while a session cap after a
// refusal lasts. Caller holds b.mu.
func (b *bucket) sessLimit(n int, now time.Time) int {
	if !b.ready || now.Sub(b.synced) > leaseFresh {
		return 0
	}
	if now.Before(b.sessCapUntil) {
		n = min(n, b.sessCap)
	}
	return n
}

// poke reports a refusal for want of a connection at once (see
// starveStep) and takes in the grant it returns; it tells whether it
// stepped. Caller holds b.mu; it is released during the step.
func (l *Limiter) poke(ctx context.Context, b *bucket, now time.Time) bool {
	// Holding its even share or more, it has nothing to ask of others.
	if b.poking || now.Sub(b.synced) < starveStep || b.share*max(b.engines, 1) >= b.conc || !b.stepMu.TryLock() {
		return false
	}
	defer b.stepMu.Unlock() // after mu is taken again below
	b.poking = true
	q := stepReq{report: b.snapshot(now)}
	b.mu.Unlock()
	res, err := l.step(ctx, b, q)
	b.mu.Lock()
	b.poking = false
	if err != nil {
		b.counts.add(q.report)
		return false
	}
	l.applyStep(b, res, l.now(), "")
	return true
}
