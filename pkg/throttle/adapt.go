package throttle

import "time"

// The adaptation law, applied in Redis (step.lua) so every engine moves
// one shared rate.
//
// Decrease. A provider-scoped deferral (421 4.7.28, 451 4.7.500, TSS04,
// 454 Throttling…; deliver.Classify decides the scope) cuts the rate at
// most once per reaction window (a few attempt durations, ≥ 500 ms), so
// one burst of deferrals counts once. Plain halving would leave a sawtooth
// averaging ~0.75 of the real limit; instead the cut goes to cutTo times
// the accepted rate measured over the last two seconds, summed over the
// engines: while sluice sends faster than the provider takes, the accepted
// rate *is* the provider's limit. No cut goes below half the rate
// (blindCut, TCP's bound), and with no measure yet (the first half
// second) it is exactly that. An engine too new to have a
// measure is assumed to take what the others take. Each cut also takes
// one connection away, but not below what the new rate needs with
// headroom (1.5 × rate × time per attempt, plus one: Little's law).
//
// Increase. The measured rate becomes the ceiling W. The rate then
// follows TCP CUBIC's curve (RFC 9438 §4.2) in the time t during which
// the rate was really used (accepted ≥ usedFraction of it) and nothing
// capped it:
//
//	rate(t) = W + c·W·(t − K)³,  K = ∛((W − rate₀)/(c·W))
//
// so it climbs fast far below W, flattens near it (10 s to regain a 5%
// cut), and probes past it slowly, then faster if no deferral comes (the
// limit may have risen). Between cuts it thus spends most of its time
// just under the ceiling, not half-way down a sawtooth. An unused rate
// does not grow (RFC 7661's reasoning for cwnd). Connections grow by one
// every connUp while some engine waited for one.
//
// Connections. A session refused for the count ("421 Too many sessions"
// at greeting, TCP connection refused) takes one connection away, at most
// once per connUp (pooled sessions close only as they idle out, so faster
// cuts would chase their own echo), never below one per live engine; the
// rate stays.
const (
	cutTo        = 0.95
	blindCut     = 0.5
	cubic        = 0.00005 // c: K = 10 s for a 5% cut
	usedFraction = 0.8
	connUp       = 5 * time.Second
	// engineLive: an engine silent this long no longer shares a key.
	engineLive = 3 * time.Second
	// stateTTL: a key's shared state expires a day after its last use.
	stateTTL = 24 * time.Hour
)
