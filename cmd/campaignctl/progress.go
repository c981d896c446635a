package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// meter shows the progress of long work on stderr: on a terminal one
// line redrawn in place a few times a second, elsewhere (pipes, CI logs)
// a plain line every few seconds so logs stay readable.
type meter struct {
	w      io.Writer
	tty    bool
	every  time.Duration
	last   time.Time
	drawn  bool   // a terminal line is showing and needs a newline at the end
	shown  string // the last line drawn
	maxLen int
}

func newMeter(w io.Writer) *meter {
	m := &meter{w: w, tty: isTerminal(w), every: 5 * time.Second}
	if m.tty {
		m.every = 200 * time.Millisecond
	}
	return m
}

// show draws line unless one was drawn too recently.
func (m *meter) show(line string) {
	if now := time.Now(); now.Sub(m.last) >= m.every {
		m.last = now
		m.draw(line)
	}
}

func (m *meter) draw(line string) {
	m.shown = line
	if !m.tty {
		fmt.Fprintln(m.w, line)
		return
	}
	// Pad over the remains of a longer previous line.
	pad := max(0, m.maxLen-len(line))
	m.maxLen = len(line)
	fmt.Fprintf(m.w, "\r%s%s", line, strings.Repeat(" ", pad))
	m.drawn = true
}

// done draws line (if any) regardless of timing and ends the display.
func (m *meter) done(line string) {
	// Off a terminal a line stays printed: never print the same twice.
	if line != "" && (m.tty || !m.last.IsZero()) && (m.tty || line != m.shown) {
		m.draw(line)
	}
	if m.drawn {
		fmt.Fprintln(m.w)
		m.drawn = false
	}
}

// bar renders fraction (0..1) as a bar of width cells.
func bar(fraction float64, width int) string {
	fraction = min(max(fraction, 0), 1)
	n := int(fraction*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// eta formats the time left at rate per second for left units; "" when
// unknown.
func eta(left int64, rate float64) string {
	if left <= 0 {
		return "0s"
	}
	if rate <= 0 {
		return ""
	}
	return human(time.Duration(float64(left) / rate * float64(time.Second)))
}

// human formats a duration for people, to the precision that matters at
// its size: 42s, 4m5s, 3h20m, 2d4h, 5 months, 3 years.
func human(d time.Duration) string {
	const day = 24 * time.Hour
	switch d = max(d, 0); {
	case d < time.Second:
		return "<1s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < day:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d < 60*day:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", d/day, d%day/time.Hour)
	case d < 730*day:
		return fmt.Sprintf("%d months", int(d.Hours()/24/30.44+0.5))
	}
	return fmt.Sprintf("%d years", int(d.Hours()/24/365.25+0.5))
}

// count is n and the noun, in the plural unless n is 1 ("1 duplicate",
// "2 duplicates"); the plural adds an s.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
