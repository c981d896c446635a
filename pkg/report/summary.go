package report

import (
	"cmp"
	"slices"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Counts are one group's recipients by outcome.
type Counts struct {
	Name string `json:"name"`
	outcome.Counts
}

// MaxGroups bounds the groups a Summary keeps, so a list spread over
// millions of small domains still summarises in bounded memory; the rest
// are counted under Other.
const MaxGroups = 10000

// Other names the group of everything past MaxGroups.
const Other = "(other)"

// Summary totals rows by outcome and by group (provider), and measures
// the recent sending rate from the rows' last-attempt times.
type Summary struct {
	All    Counts
	Groups map[string]*Counts
	// By names a row's group; nil groups by Row.Domain.
	By func(Row) string
	// Now and Window bound "recent" for Rate (defaults: time.Now(), 1m).
	Now    time.Time
	Window time.Duration

	recent int64     // final outcomes within Window
	first  time.Time // earliest attempt seen
}

// Add counts one row.
func (s *Summary) Add(r Row) {
	if s.Groups == nil {
		s.Groups = map[string]*Counts{}
	}
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	if s.Window <= 0 {
		s.Window = time.Minute
	}
	s.All.Add(r.Outcome)
	name := r.Domain()
	if s.By != nil {
		name = s.By(r)
	}
	g := s.Groups[name]
	if g == nil {
		if len(s.Groups) >= MaxGroups {
			name = Other
		}
		if g = s.Groups[name]; g == nil {
			g = &Counts{Name: name}
			s.Groups[name] = g
		}
	}
	g.Add(r.Outcome)
	if r.Last.IsZero() {
		return
	}
	if s.first.IsZero() || r.Last.Before(s.first) {
		s.first = r.Last
	}
	attempted := outcome.Status(r.Outcome)
	final := attempted == outcome.Delivered || attempted == outcome.Bounced || attempted == outcome.Failed
	if final && !r.Last.Before(s.Now.Add(-s.Window)) {
		s.recent++
	}
}

// Rate is final outcomes per second over the last Window, or since the
// first attempt when that is more recent (a campaign that started 5 s ago
// is not averaged over a minute).
func (s *Summary) Rate() float64 {
	if s.recent == 0 {
		return 0
	}
	span := s.Window
	if since := s.Now.Sub(s.first); since < span {
		span = max(since, time.Second)
	}
	return float64(s.recent) / span.Seconds()
}

// Top returns the n largest groups by total, largest first, then one
// group (Other) summing the rest when there is a rest.
func (s *Summary) Top(n int) []Counts {
	all := make([]Counts, 0, len(s.Groups))
	rest := Counts{Name: Other}
	for _, g := range s.Groups {
		if g.Name == Other {
			rest.Merge(g.Counts)
			continue
		}
		all = append(all, *g)
	}
	slices.SortFunc(all, func(a, b Counts) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Name, b.Name))
	})
	if n > 0 && len(all) > n {
		for _, g := range all[n:] {
			rest.Merge(g.Counts)
		}
		all = all[:n]
	}
	if rest.Total > 0 {
		all = append(all, rest)
	}
	return all
}
