package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// sourceView is one egress source in campaignctl sources.
type sourceView struct {
	Name    string   `json:"name"`
	Address string   `json:"address"` // "" is the default route
	EHLO    string   `json:"ehlo"`
	Pools   []string `json:"pools"`
	// Ramping: the source has a warm-up ramp (warmup.start), of Days steps
	// from Start.
	Ramping   bool           `json:"ramping"`
	Start     string         `json:"start,omitempty"`
	Days      int            `json:"days,omitempty"`
	Providers []providerView `json:"providers"`
}

// providerView is a source's figures toward one provider it has sent to.
// Rate, Connections and State are the throttle's per (source, provider)
// state: null until the engine keeps one.
type providerView struct {
	warmup.Status
	Rate        *float64 `json:"rate"`
	Connections *int     `json:"connections"`
	State       *string  `json:"state"`
}

func cmdSources(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sources", "[flags]",
		"Lists the egress sources of the engine configuration (-config; without it the one implicit\n"+
			"default source): address, EHLO name, pools, and for each provider a ramping source has sent to,\n"+
			"its warm-up: the day of its ramp, today's volume against the day's cap (and the hour's), and the\n"+
			"verdict on the last day with traffic (healthy: the ramp moved up; hold; back: it stepped back;\n"+
			"idle: no traffic, held). Days and caps are UTC. A source without warmup.start is warm: no cap,\n"+
			"and no volume is counted for it.\n\n"+
			"The RATE, CONNS and STATE columns (rate, connections, state in --json) are placeholders, shown\n"+
			"as - (null), until the engine keeps throttle state per (source, provider).",
		"campaignctl -config /etc/sluice/engine.yaml sources --json")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per source")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("sources takes no arguments: %w", errUsage)
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if cfg == nil {
		cfg = config.Default()
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	w := warmup.New(rdb, ks, warmup.Plans(cfg))
	now := time.Now()
	views := make([]sourceView, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		v := sourceView{Name: s.Name, Address: s.Address, EHLO: s.EHLO, Pools: []string{}, Providers: []providerView{}}
		for _, p := range cfg.Pools {
			if slices.ContainsFunc(p.Sources, func(ps config.PoolSource) bool { return ps.Source == s.Name }) {
				v.Pools = append(v.Pools, p.Name)
			}
		}
		if plan, ok := warmup.PlanFor(s); ok {
			v.Ramping, v.Start, v.Days = true, s.Warmup.Start, len(plan.Schedule)
			providers, err := w.Providers(ctx, s.Name)
			if err != nil {
				return err
			}
			for _, p := range providers {
				st, err := w.Advance(ctx, s.Name, p, now)
				if err != nil {
					return err
				}
				v.Providers = append(v.Providers, providerView{Status: st})
			}
		}
		views = append(views, v)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tADDRESS\tEHLO\tPOOLS\tPROVIDER\tDAY\tTODAY/CAP\tHOUR/CAP\tLAST DAY\tRATE\tCONNS\tSTATE")
	for _, v := range views {
		addr := v.Address
		if addr == "" {
			addr = "(default route)"
		}
		head := fmt.Sprintf("%s\t%s\t%s\t%s", v.Name, addr, v.EHLO, strings.Join(v.Pools, ","))
		switch {
		case !v.Ramping:
			fmt.Fprintf(tw, "%s\t-\twarm\t-\t-\t-\t-\t-\t-\n", head)
		case len(v.Providers) == 0:
			fmt.Fprintf(tw, "%s\t-\t1/%d\t0/-\t-\t-\t-\t-\t-\n", head, v.Days)
		}
		for _, p := range v.Providers {
			day, today, hour := "warm", strconv.Itoa(p.Sent)+"/-", strconv.Itoa(p.SentThisHour)+"/-"
			if p.Ramping {
				day = fmt.Sprintf("%d/%d", p.Day, p.Days)
				today = fmt.Sprintf("%d/%d", p.Sent, p.Cap)
				hour = fmt.Sprintf("%d/%d", p.SentThisHour, p.HourlyCap)
			}
			last := "-"
			if p.Verdict != "" {
				last = p.Verdict + " (" + p.JudgedDay + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\n", head, p.Provider, day, today, hour, last)
		}
	}
	return tw.Flush()
}

// checkPool refuses a campaign whose pool: the -config file does not
// define (campaign files are parsed without it, so this is the first
// place the name can be checked); without -config the engine checks it.
func checkPool(e *env, spec *campaign.Spec) error {
	if spec.Pool == "" {
		return nil
	}
	cfg, err := e.config()
	if err != nil || cfg == nil {
		return err
	}
	if err := cfg.CheckPool(spec.Pool); err != nil {
		return fmt.Errorf("%s: pool: %w", spec.Path, err)
	}
	return nil
}
