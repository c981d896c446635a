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

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/throttle"
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
	// Totals: the source's delivered, hard-bounced (at SMTP time and by
	// mail) and complained-about mail, all providers, and the rates.
	Totals warmup.SourceTotals `json:"totals"`
}

// providerView is a source's figures toward one provider: its warm-up
// (a ramping source's, for each provider it has sent to) and the
// throttle's state of its bucket toward that provider (throttle.Bucket):
// rate, connections and state, null when no engine used the bucket in
// the last day.
type providerView struct {
	warmup.Status
	Rate        *float64 `json:"rate"`
	Connections *int     `json:"connections"`
	State       *string  `json:"state"`
}

func cmdSources(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sources", "[flags]",
		"Lists the egress sources of the engine configuration (-config; without it the one implicit\n"+
			"default source): address, EHLO name, pools, and per provider the source has sent to: the\n"+
			"throttle's state of that source toward it (RATE msg/s, CONNS in use/limit, STATE: normal,\n"+
			"backoff, capped, pinned, or suspended until a time with the reply), and for a ramping source\n"+
			"its warm-up: the day of its ramp, today's volume against the day's cap (and the hour's), and\n"+
			"the verdict on the last day with traffic (healthy: the ramp moved up; hold; back: it stepped\n"+
			"back; idle: no traffic, held). Below, per source over all providers: mail delivered, hard\n"+
			"bounces (at SMTP time and by mail) and complaints, and the rates over delivered, as the\n"+
			"guardrails judge campaigns. Days and caps are UTC. A source without warmup.start is warm:\n"+
			"no cap. Sources on the default route (no address) share the provider's own throttle state,\n"+
			"as every source does with throttle.one_state_per_provider. Last, the sending domains a provider\n"+
			"slowed (a domain-scoped deferral: Gmail's 4.7.28 about the DKIM domain, 5.7.515): that\n"+
			"domain's state toward it, which paces its mail from every source (limits --domain).",
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
	buckets, err := bucketsBySource(ctx, rdb, ks)
	if err != nil {
		return err
	}
	w := warmup.New(rdb, ks, warmup.Plans(cfg))
	names := make([]string, len(cfg.Sources))
	for i, s := range cfg.Sources {
		names[i] = s.Name
	}
	totals, err := warmup.ReadTotals(ctx, rdb, ks, names)
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]sourceView, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		v := sourceView{Name: s.Name, Address: s.Address, EHLO: s.EHLO, Pools: []string{}, Providers: []providerView{},
			Totals: totals[s.Name]}
		for _, p := range cfg.Pools {
			if slices.ContainsFunc(p.Sources, func(ps config.PoolSource) bool { return ps.Source == s.Name }) {
				v.Pools = append(v.Pools, p.Name)
			}
		}
		mine := buckets[""]
		if s.Address != "" && !cfg.Throttle.OneStatePerProvider {
			mine = buckets[s.Name]
		}
		var providers []string
		if plan, ok := warmup.PlanFor(s); ok {
			v.Ramping, v.Start, v.Days = true, s.Warmup.Start, len(plan.Schedule)
			if providers, err = w.Providers(ctx, s.Name); err != nil {
				return err
			}
		}
		for k := range mine {
			providers = append(providers, k)
		}
		slices.Sort(providers)
		for _, p := range slices.Compact(providers) {
			st, err := w.Advance(ctx, s.Name, p, now)
			if err != nil {
				return err
			}
			pv := providerView{Status: st}
			if b, ok := mine[p]; ok {
				state := bucketState(b)
				pv.Rate, pv.Connections, pv.State = &b.Rate, &b.Connections, &state
			}
			v.Providers = append(v.Providers, pv)
		}
		views = append(views, v)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	if err := printSources(e, views); err != nil {
		return err
	}
	return printDomains(e, buckets)
}

// printDomains lists the (sending domain, provider) throttle states in
// use (throttle.DomainBucket): a domain a provider slowed, every source.
func printDomains(e *env, buckets map[string]map[string]throttle.Status) error {
	var rows []throttle.Status
	for src, byKey := range buckets {
		if _, ok := throttle.DomainOf("k@" + src); ok {
			for _, b := range byKey {
				rows = append(rows, b)
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b throttle.Status) int { return strings.Compare(a.Provider, b.Provider) })
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDING DOMAIN\tPROVIDER\tRATE\tCONNS\tSTATE")
	for _, b := range rows {
		dom, _ := throttle.DomainOf(b.Provider)
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%s\n", dom, throttle.BaseKey(b.Provider), b.Rate, b.Connections, bucketState(b))
	}
	return tw.Flush()
}

// bucketsBySource is the throttle's state of every bucket used within the
// last day, by source ("" for the keys' own buckets) and destination key.
func bucketsBySource(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space) (map[string]map[string]throttle.Status, error) {
	all, err := throttle.Inspect(ctx, rdb, ks)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]throttle.Status{}
	for _, b := range all {
		key, src := throttle.SplitBucket(b.Provider)
		if out[src] == nil {
			out[src] = map[string]throttle.Status{}
		}
		out[src][key] = b
	}
	return out, nil
}

// bucketState is a bucket's state as sources shows it: a suspension with
// its end and the reply behind it.
func bucketState(b throttle.Status) string {
	if b.State == "suspended" {
		return fmt.Sprintf("suspended until %s (%s)", b.SuspendedUntil.UTC().Format(time.RFC3339), b.SuspendedBy)
	}
	return b.State
}

func printSources(e *env, views []sourceView) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tADDRESS\tEHLO\tPOOLS\tPROVIDER\tDAY\tTODAY/CAP\tHOUR/CAP\tLAST DAY\tRATE\tCONNS\tSTATE")
	for _, v := range views {
		addr := v.Address
		if addr == "" {
			addr = "(default route)"
		}
		head := fmt.Sprintf("%s\t%s\t%s\t%s", v.Name, addr, v.EHLO, strings.Join(v.Pools, ","))
		if len(v.Providers) == 0 {
			day, today := "warm", "-"
			if v.Ramping {
				day, today = fmt.Sprintf("1/%d", v.Days), "0/-"
			}
			fmt.Fprintf(tw, "%s\t-\t%s\t%s\t-\t-\t-\t-\t-\n", head, day, today)
		}
		for _, p := range v.Providers {
			day, today, hour := "warm", strconv.Itoa(p.Sent)+"/-", strconv.Itoa(p.SentThisHour)+"/-"
			if !v.Ramping {
				today, hour = "-", "-"
			}
			if p.Ramping {
				day = fmt.Sprintf("%d/%d", p.Day, p.Days)
				today = fmt.Sprintf("%d/%d", p.Sent, p.Cap)
				hour = fmt.Sprintf("%d/%d", p.SentThisHour, p.HourlyCap)
			}
			last := "-"
			if p.Verdict != "" {
				last = p.Verdict + " (" + p.JudgedDay + ")"
			}
			rate, conns, state := "-", "-", "-"
			if p.Rate != nil {
				rate, conns, state = fmt.Sprintf("%.1f", *p.Rate), strconv.Itoa(*p.Connections), *p.State
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", head, p.Provider, day, today, hour, last, rate, conns, state)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDELIVERED\tBOUNCED\tCOMPLAINTS\tBOUNCE RATE\tCOMPLAINT RATE")
	for _, v := range views {
		t := v.Totals
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f%%\t%.3f%%\n", v.Name, t.Delivered, t.Bounced, t.Complaints,
			100*t.BounceRate, 100*t.ComplaintRate)
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
