package config

import (
	"fmt"
	"strings"
)

// Inbound is the SMTP listener for what comes back (pkg/inbound):
// asynchronous bounces at the VERP return paths and feedback-loop
// complaints at the FBL addresses. It is off while Listen is empty.
type Inbound struct {
	Listen string `yaml:"listen"` // e.g. "0.0.0.0:25"
	// Domains are the bounce domains: mail is accepted for
	// bounces@DOMAIN and its VERP forms bounces+TAG@DOMAIN (or the local
	// part of ReturnPath). Any other address is refused: not a relay.
	Domains []string `yaml:"domains"`
	// FBL are the addresses registered with providers' feedback loops.
	FBL []string `yaml:"fbl"`
	// Local is the return paths' local part (default "bounces"): a
	// campaign's return_path should be Local@one of Domains.
	Local           string  `yaml:"local"`
	MaxMessageBytes int64   `yaml:"max_message_bytes"` // default 10 MiB
	Rate            float64 `yaml:"rate"`              // messages a second per client IP (10)
	Burst           int     `yaml:"burst"`             // (100)
}

// ReturnPaths are Local@each of Domains.
func (i Inbound) ReturnPaths() []string {
	out := make([]string, len(i.Domains))
	for n, d := range i.Domains {
		out[n] = i.Local + "@" + d
	}
	return out
}

// Guardrails pause a campaign whose recipients complain or bounce too
// much (pkg/feedbackloop). Rates are fractions: 0.003 is 0.3%.
type Guardrails struct {
	// ComplaintWarn logs a warning when complaints ÷ delivered reaches it
	// (default 0.001); ComplaintPause pauses the campaign (0.003).
	ComplaintWarn  float64 `yaml:"complaint_warn"`
	ComplaintPause float64 `yaml:"complaint_pause"`
	// BouncePause pauses when bounced ÷ delivered reaches it (0.05).
	BouncePause float64 `yaml:"bounce_pause"`
	// MinDelivered is the sample below which no rate is judged (1000).
	MinDelivered int64 `yaml:"min_delivered"`
}

func (c *Config) feedbackDefaults() {
	i := &c.Inbound
	if i.Local == "" {
		i.Local = "bounces"
	}
	g := &c.Guardrails
	if g.ComplaintWarn == 0 {
		g.ComplaintWarn = 0.001
	}
	if g.ComplaintPause == 0 {
		g.ComplaintPause = 0.003
	}
	if g.BouncePause == 0 {
		g.BouncePause = 0.05
	}
	if g.MinDelivered == 0 {
		g.MinDelivered = 1000
	}
}

func (c *Config) feedbackValidate() error {
	i := c.Inbound
	if i.Listen != "" && len(i.Domains) == 0 && len(i.FBL) == 0 {
		return invalid("inbound", "listen is set but neither domains nor fbl: the listener would accept nothing")
	}
	for n, d := range i.Domains {
		if d == "" || strings.ContainsAny(d, "@ ") {
			return invalid(fmt.Sprintf("inbound.domains[%d]", n), "%q is not a domain", d)
		}
	}
	for n, a := range i.FBL {
		if l, d, ok := strings.Cut(a, "@"); !ok || l == "" || d == "" {
			return invalid(fmt.Sprintf("inbound.fbl[%d]", n), "%q is not an address", a)
		}
	}
	if strings.ContainsAny(i.Local, "@+ ") {
		return invalid("inbound.local", "%q must be a plain local part (no @, + or space)", i.Local)
	}
	if i.MaxMessageBytes < 0 || i.Rate < 0 || i.Burst < 0 {
		return invalid("inbound", "max_message_bytes, rate and burst must not be negative")
	}
	g := c.Guardrails
	for _, v := range []struct {
		key string
		f   float64
	}{{"complaint_warn", g.ComplaintWarn}, {"complaint_pause", g.ComplaintPause}, {"bounce_pause", g.BouncePause}} {
		if v.f <= 0 || v.f > 1 {
			return invalid("guardrails."+v.key, "%v must be a fraction in (0,1]: 0.003 is 0.3%%", v.f)
		}
	}
	if g.MinDelivered < 0 {
		return invalid("guardrails.min_delivered", "%d must not be negative", g.MinDelivered)
	}
	return nil
}
