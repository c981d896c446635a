//go:build race

package message

// poisonOnRelease: under the race detector, Release overwrites a
// message's own bytes, so a use after Release (which the detector cannot
// see through sync.Pool) shows as garbage in what was sent or signed.
const poisonOnRelease = true
