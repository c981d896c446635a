//go:build !race

package message

// poisonOnRelease is off outside race builds (see poison_race.go).
const poisonOnRelease = false
