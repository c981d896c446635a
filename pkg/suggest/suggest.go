// Package suggest names the known word closest to a misspelt one, for
// "did you mean" hints in configuration and campaign file errors.
package suggest

import (
	"fmt"
	"strings"
)

// maxDistance is the largest edit distance still offered as a suggestion.
const maxDistance = 2

// Closest returns the word in known nearest to word (compared
// case-insensitively, at most two edits away), or "" if none is close.
func Closest(word string, known []string) string {
	w := strings.ToLower(word)
	best, bestD := "", maxDistance+1
	for _, k := range known {
		if d := Distance(w, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Hint is ` (did you mean "KEY"?)` for the closest known word, or "".
func Hint(word string, known []string) string {
	if best := Closest(word, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
