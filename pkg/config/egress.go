package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/suggest"
)

// Source is one egress source: a local address sessions bind to and the
// EHLO name that address's PTR record matches. Providers judge reputation
// per source IP, so each source warms up and is throttled on its own. A
// source with no Address sends from whatever address the kernel picks
// (the default route); several may, to keep the lanes' pools apart
// before there are addresses to give them, but providers then see one IP.
type Source struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"` // local IP to bind, e.g. 203.0.113.10; "" is the default route
	EHLO    string `yaml:"ehlo"`    // default: hostname
	Warmup  Warmup `yaml:"warmup"`
}

// Warmup is a source's ramp (pkg/warmup): a daily volume cap per
// provider that follows Schedule from Start, one step per healthy day. A
// source without Start is warm: no cap.
type Warmup struct {
	// Schedule is the daily cap per provider on day 1, 2, ...; the ramp
	// ends after its last step. Empty with Start set: the shipped ramp
	// (warmup.DefaultSchedule).
	Schedule []int `yaml:"schedule"`
	// Start is the ramp's first day, YYYY-MM-DD (UTC).
	Start string `yaml:"start"`
	// A day advances the ramp only when its deferral, hard-bounce and
	// complaint rates (of that day's attempts toward the provider) stay
	// below these. Defaults 0.05, 0.02, 0.001.
	MaxDeferralRate  float64 `yaml:"max_deferral_rate"`
	MaxBounceRate    float64 `yaml:"max_bounce_rate"`
	MaxComplaintRate float64 `yaml:"max_complaint_rate"`
	// HourlyBurst bounds an hour to daily/24 × HourlyBurst, so a day's cap
	// is spread over at least 24/HourlyBurst hours. Default 4.
	HourlyBurst float64 `yaml:"hourly_burst"`
}

// StartDate is Start parsed (UTC midnight); ok is false when the source
// has no ramp.
func (w Warmup) StartDate() (t time.Time, ok bool) {
	if w.Start == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, w.Start)
	return t, err == nil
}

// Pool is a set of sources mail is spread over by weight. A lane (and a
// campaign, with pool: in its file) names the pool it sends from.
type Pool struct {
	Name    string       `yaml:"name"`
	Sources []PoolSource `yaml:"sources"`
}

// PoolSource is one source of a pool and its share of the pool's mail.
type PoolSource struct {
	Source string `yaml:"source"` // a name in sources
	Weight int    `yaml:"weight"` // relative share; 0 or omitted: 1
}

// The implicit names used when the file configures no sources or pools.
const (
	DefaultSource = "default"
	DefaultPool   = "default"
)

var sourceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// egressDefaults adds the implicit default source (no address, the
// hostname as EHLO) when none is configured and the implicit default
// pool of every source when no pool is, fills EHLO names, weights and
// warmup thresholds, and points lanes without a pool at the default pool.
func (c *Config) egressDefaults() {
	if len(c.Sources) == 0 {
		c.Sources = []Source{{Name: DefaultSource}}
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.EHLO == "" {
			s.EHLO = c.Hostname
		}
		w := &s.Warmup
		if w.MaxDeferralRate == 0 {
			w.MaxDeferralRate = 0.05
		}
		if w.MaxBounceRate == 0 {
			w.MaxBounceRate = 0.02
		}
		if w.MaxComplaintRate == 0 {
			w.MaxComplaintRate = 0.001
		}
		if w.HourlyBurst == 0 {
			w.HourlyBurst = 4
		}
	}
	if len(c.Pools) == 0 {
		p := Pool{Name: DefaultPool}
		for _, s := range c.Sources {
			p.Sources = append(p.Sources, PoolSource{Source: s.Name, Weight: 1})
		}
		c.Pools = []Pool{p}
	}
	for i := range c.Pools {
		for j := range c.Pools[i].Sources {
			if c.Pools[i].Sources[j].Weight == 0 {
				c.Pools[i].Sources[j].Weight = 1
			}
		}
	}
	for _, l := range []*Lane{&c.Lanes.Transactional, &c.Lanes.Marketing} {
		if l.Pool == "" && len(c.Pools) == 1 {
			l.Pool = c.Pools[0].Name
		}
	}
}

// egressValidate checks sources, pools and the lanes' pools.
func (c *Config) egressValidate() error {
	names := make([]string, 0, len(c.Sources))
	addrs := map[string]string{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		if err := newName(p, s.Name, &names); err != nil {
			return err
		}
		switch ip := net.ParseIP(s.Address); {
		case s.Address == "":
		case ip == nil:
			return invalid(p+".address", "(%s) %q is not an IP address (a local address of this host to send from)", s.Name, s.Address)
		default:
			key := ip.String()
			if other, dup := addrs[key]; dup {
				return invalid(p+".address", "(%s) %s is also %s's address", s.Name, s.Address, other)
			}
			addrs[key] = s.Name
		}
		if s.EHLO == "" || strings.ContainsAny(s.EHLO, " \t\r\n<>") {
			return invalid(p+".ehlo", "(%s) %q is not a host name", s.Name, s.EHLO)
		}
		if err := s.Warmup.validate(p + ".warmup"); err != nil {
			return err
		}
	}
	pools := make([]string, 0, len(c.Pools))
	for i, pl := range c.Pools {
		p := fmt.Sprintf("pools[%d]", i)
		if err := newName(p, pl.Name, &pools); err != nil {
			return err
		}
		if len(pl.Sources) == 0 {
			return invalid(p+".sources", "(%s) names no source", pl.Name)
		}
		var in []string
		for j, ps := range pl.Sources {
			q := fmt.Sprintf("%s.sources[%d]", p, j)
			if !slices.Contains(names, ps.Source) {
				return invalid(q+".source", "unknown source %q%s; sources are %s", ps.Source, suggest.Hint(ps.Source, names), strings.Join(names, ", "))
			}
			if slices.Contains(in, ps.Source) {
				return invalid(q+".source", "%q is in pool %s twice", ps.Source, pl.Name)
			}
			in = append(in, ps.Source)
			if ps.Weight < 0 {
				return invalid(q+".weight", "%d must not be negative", ps.Weight)
			}
		}
	}
	for _, l := range []struct {
		key  string
		pool string
	}{{"lanes.transactional.pool", c.Lanes.Transactional.Pool}, {"lanes.marketing.pool", c.Lanes.Marketing.Pool}} {
		if l.pool == "" {
			return invalid(l.key, "is required when several pools are configured (pools are %s)", strings.Join(pools, ", "))
		}
		if err := c.CheckPool(l.pool); err != nil {
			return invalid(l.key, "%v", err)
		}
	}
	return nil
}

// newName checks the name at path p is well formed and not among seen,
// then adds it.
func newName(p, name string, seen *[]string) error {
	if !sourceName.MatchString(name) {
		return invalid(p+".name", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -", name)
	}
	if slices.Contains(*seen, name) {
		return invalid(p+".name", "%q is defined twice", name)
	}
	*seen = append(*seen, name)
	return nil
}

func (w Warmup) validate(p string) error {
	if w.Start != "" {
		if _, err := time.Parse(time.DateOnly, w.Start); err != nil {
			return invalid(p+".start", "%q is not a date: want YYYY-MM-DD", w.Start)
		}
	} else if len(w.Schedule) > 0 {
		return invalid(p+".start", "is required with a schedule: the ramp's first day, YYYY-MM-DD")
	}
	for i, n := range w.Schedule {
		if n <= 0 {
			return invalid(fmt.Sprintf("%s.schedule[%d]", p, i), "%d must be positive (messages per day per provider)", n)
		}
	}
	for _, v := range []struct {
		key string
		f   float64
	}{{"max_deferral_rate", w.MaxDeferralRate}, {"max_bounce_rate", w.MaxBounceRate}, {"max_complaint_rate", w.MaxComplaintRate}} {
		if v.f <= 0 || v.f > 1 {
			return invalid(p+"."+v.key, "%v must be a fraction in (0,1]: 0.05 is 5%%", v.f)
		}
	}
	if w.HourlyBurst < 1 {
		return invalid(p+".hourly_burst", "%v must be at least 1", w.HourlyBurst)
	}
	return nil
}

// Source returns the source named name.
func (c *Config) Source(name string) (Source, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// Pool returns the pool named name.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// CheckPool refuses a pool name the configuration does not define, with
// a "did you mean". Campaign files are parsed without the engine's
// configuration, so their pool: is checked with this at launch (given
// -config) and by the engine.
func (c *Config) CheckPool(name string) error {
	if _, ok := c.Pool(name); ok {
		return nil
	}
	names := make([]string, len(c.Pools))
	for i, p := range c.Pools {
		names[i] = p.Name
	}
	return fmt.Errorf("unknown pool %q%s; pools are %s", name, suggest.Hint(name, names), strings.Join(names, ", "))
}

// PoolSources returns the sources of pool name with their weights, in
// the pool's order.
func (c *Config) PoolSources(name string) ([]Source, []int, error) {
	p, ok := c.Pool(name)
	if !ok {
		return nil, nil, c.CheckPool(name)
	}
	srcs := make([]Source, 0, len(p.Sources))
	weights := make([]int, 0, len(p.Sources))
	for _, ps := range p.Sources {
		s, _ := c.Source(ps.Source) // Validate checked every name
		srcs = append(srcs, s)
		weights = append(weights, ps.Weight)
	}
	return srcs, weights, nil
}
