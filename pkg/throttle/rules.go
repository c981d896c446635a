package throttle

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// rule is a compiled response rule. Matches are counted in Redis, so a
// threshold ("2 in 10 min") is reached by the engines together.
type rule struct {
	config.Rule
	re        *regexp.Regexp
	providers map[string]bool
	count     int           // matches needed
	within    time.Duration // window the matches must fall in
}

// compileRules checks and compiles rules.
func compileRules(rs []config.Rule) ([]*rule, error) {
	var out []*rule
	names := map[string]bool{}
	for i, c := range rs {
		if c.Name == "" || strings.ContainsAny(c.Name, " ") {
			return nil, fmt.Errorf("rule %d: name %q must be non-empty, without spaces", i, c.Name)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("rule %q defined twice", c.Name)
		}
		names[c.Name] = true
		re, err := regexp.Compile("(?i)" + c.Match)
		if err != nil || c.Match == "" {
			return nil, fmt.Errorf("rule %q: match: %w", c.Name, orEmpty(err))
		}
		r := &rule{Rule: c, re: re, count: 1, within: c.Duration}
		switch c.Action {
		case "suspend":
		case "cap":
			if c.Rate <= 0 && c.RateFactor <= 0 && c.Connections <= 0 && c.ConnectionsFactor <= 0 {
				return nil, fmt.Errorf("rule %q: a cap needs rate, rate_factor, connections or connections_factor", c.Name)
			}
			if c.RateFactor < 0 || c.RateFactor > 1 || c.ConnectionsFactor < 0 || c.ConnectionsFactor > 1 {
				return nil, fmt.Errorf("rule %q: factors must be in (0,1]", c.Name)
			}
		default:
			return nil, fmt.Errorf("rule %q: action %q is neither suspend nor cap", c.Name, c.Action)
		}
		if c.Duration <= 0 {
			return nil, fmt.Errorf("rule %q: duration must be positive", c.Name)
		}
		if c.Threshold != "" {
			if r.count, r.within, err = parseThreshold(c.Threshold); err != nil {
				return nil, fmt.Errorf("rule %q: %w", c.Name, err)
			}
		}
		if len(c.Providers) > 0 {
			r.providers = map[string]bool{}
			for _, p := range c.Providers {
				r.providers[p] = true
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func orEmpty(err error) error {
	if err == nil {
		return fmt.Errorf("empty pattern")
	}
	return err
}

// parseThreshold reads "N/WINDOW", e.g. "2/10m".
func parseThreshold(s string) (int, time.Duration, error) {
	n, w, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || count < 1 {
		return 0, 0, fmt.Errorf("threshold %q: want N/WINDOW, e.g. 2/10m", s)
	}
	within, err := time.ParseDuration(strings.TrimSpace(w))
	if err != nil || within <= 0 {
		return 0, 0, fmt.Errorf("threshold %q: want N/WINDOW, e.g. 2/10m", s)
	}
	return count, within, nil
}

// applies reports whether the rule is about destinations named name.
func (r *rule) applies(name string) bool { return r.providers == nil || r.providers[name] }

// replyText is what rules match: "CODE ENHANCED TEXT". It is "" for an
// outcome sluice decided itself (no SMTP reply, or a local stage), which
// no rule may match: a rule matching our own "suspended" text would extend
// its own suspension forever (KumoMTA's TSA guards against the same).
func replyText(o outcome.Outcome) string {
	if o.Code == 0 {
		return ""
	}
	switch o.Stage {
	case outcome.StageBuild, outcome.StageQueue, outcome.StageRoute:
		return ""
	}
	parts := []string{strconv.Itoa(o.Code)}
	if o.Enhanced != "" && !strings.HasPrefix(o.Text, o.Enhanced) {
		parts = append(parts, o.Enhanced)
	}
	if o.Text != "" {
		parts = append(parts, o.Text)
	}
	return strings.Join(parts, " ")
}
