package config

import (
	"strings"
	"testing"
	"time"
)

const egressDoc = `hostname: mta.example.test
sources:
  - {name: tx1, address: 127.0.0.2, ehlo: tx1.example.test}
  - name: mk1
    address: 127.0.0.3
    ehlo: mk1.example.test
    warmup: {schedule: [100, 200, 400], start: 2026-01-15}
  - {name: mk2, address: 127.0.0.4}
pools:
  - name: transactional
    sources: [{source: tx1}]
  - name: marketing
    sources: [{source: mk1, weight: 3}, {source: mk2}]
lanes:
  transactional: {pool: transactional}
  marketing: {pool: marketing}
`

func TestParseSourcesAndPools(t *testing.T) {
	c, err := Parse("e.yaml", []byte(egressDoc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 3 || c.Sources[1].Address != "127.0.0.3" || c.Sources[1].EHLO != "mk1.example.test" {
		t.Fatalf("sources = %+v", c.Sources)
	}
	if c.Sources[2].EHLO != "mta.example.test" {
		t.Errorf("mk2's EHLO %q, want the hostname", c.Sources[2].EHLO)
	}
	w := c.Sources[1].Warmup
	if start, ok := w.StartDate(); !ok || !start.Equal(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)) || len(w.Schedule) != 3 {
		t.Errorf("warmup = %+v", w)
	}
	if w.MaxDeferralRate != 0.05 || w.MaxBounceRate != 0.02 || w.MaxComplaintRate != 0.001 || w.HourlyBurst != 4 {
		t.Errorf("warmup defaults = %+v", w)
	}
	if _, ok := c.Sources[0].Warmup.StartDate(); ok {
		t.Errorf("tx1 has a ramp")
	}
	srcs, weights, err := c.PoolSources("marketing")
	if err != nil || len(srcs) != 2 || srcs[0].Name != "mk1" || weights[0] != 3 || weights[1] != 1 {
		t.Fatalf("marketing pool = %+v %v %v", srcs, weights, err)
	}
	if c.Lanes.Transactional.Pool != "transactional" || c.Lanes.Marketing.Pool != "marketing" {
		t.Errorf("lanes = %+v", c.Lanes)
	}
	if err := c.CheckPool("marketting"); err == nil || !strings.Contains(err.Error(), `did you mean "marketing"?`) {
		t.Errorf("CheckPool(marketting) = %v", err)
	}
}

// Without sources, one implicit source on the default route, in the one
// pool both lanes use.
func TestDefaultSourceAndPool(t *testing.T) {
	c := Default()
	if len(c.Sources) != 1 || c.Sources[0].Name != DefaultSource || c.Sources[0].Address != "" || c.Sources[0].EHLO != c.Hostname {
		t.Fatalf("sources = %+v", c.Sources)
	}
	if len(c.Pools) != 1 || c.Pools[0].Name != DefaultPool || c.Pools[0].Sources[0] != (PoolSource{DefaultSource, 1}) {
		t.Fatalf("pools = %+v", c.Pools)
	}
	if c.Lanes.Transactional.Pool != DefaultPool || c.Lanes.Marketing.Pool != DefaultPool {
		t.Fatalf("lanes = %+v", c.Lanes)
	}
	// Sources without pools: the default pool holds them all.
	c, err := Parse("e.yaml", []byte("sources: [{name: a, address: 127.0.0.2}, {name: b, address: 127.0.0.3}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pools) != 1 || len(c.Pools[0].Sources) != 2 || c.Lanes.Marketing.Pool != DefaultPool {
		t.Fatalf("pools = %+v, lanes %+v", c.Pools, c.Lanes)
	}
}

func TestEgressErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{strings.Replace(egressDoc, "{source: mk2}", "{source: mk3}", 1),
			`e.yaml:13: pools[1].sources[1].source: unknown source "mk3" (did you mean "mk1"?); sources are tx1, mk1, mk2`},
		{strings.Replace(egressDoc, "{source: tx1}", "{source: txl}", 1),
			`e.yaml:11: pools[0].sources[0].source: unknown source "txl" (did you mean "tx1"?); sources are tx1, mk1, mk2`},
		{strings.Replace(egressDoc, "marketing: {pool: marketing}", "marketing: {pool: marketting}", 1),
			`e.yaml:16: lanes.marketing.pool: unknown pool "marketting" (did you mean "marketing"?); pools are transactional, marketing`},
		{strings.Replace(egressDoc, "address: 127.0.0.4", "address: 127.0.0.2", 1),
			`e.yaml:8: sources[2].address: (mk2) 127.0.0.2 is also tx1's address`},
		{strings.Replace(egressDoc, "address: 127.0.0.4", "address: mail.example.test", 1),
			`e.yaml:8: sources[2].address: (mk2) "mail.example.test" is not an IP address (a local address of this host to send from)`},
		{strings.Replace(egressDoc, "start: 2026-01-15", "start: 15/01/2026", 1),
			`e.yaml:7: sources[1].warmup.start: "15/01/2026" is not a date: want YYYY-MM-DD`},
		{strings.Replace(egressDoc, "[100, 200, 400]", "[100, 0, 400]", 1),
			`e.yaml:7: sources[1].warmup.schedule[1]: 0 must be positive (messages per day per provider)`},
		{strings.Replace(egressDoc, "name: mk1\n", "name: tx1\n", 1),
			`e.yaml:4: sources[1].name: "tx1" is defined twice`},
		{strings.Replace(egressDoc, "lanes:\n  transactional: {pool: transactional}\n  marketing: {pool: marketing}\n", "", 1),
			`e.yaml: lanes.transactional.pool: is required when several pools are configured (pools are transactional, marketing)`},
		{"sources: [{name: a, adress: 127.0.0.2}]\n",
			`e.yaml:1: unknown key "adress" in sources[0] (did you mean "address"?)`},
		{"pools: [{name: p, sources: [{source: x, wieght: 2}]}]\n",
			`e.yaml:1: unknown key "wieght" in pools[0].sources[0] (did you mean "weight"?)`},
	} {
		_, err := Parse("e.yaml", []byte(c.doc))
		if err == nil || err.Error() != c.want {
			t.Errorf("got:  %v\nwant: %s", err, c.want)
		}
	}
}

// The shipped example keeps transactional and marketing mail on pools
// that share no source.
func TestExampleSeparatesLanePools(t *testing.T) {
	c, err := Load("../../configs/engine.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tx, _, err := c.PoolSources(c.Lanes.Transactional.Pool)
	if err != nil {
		t.Fatal(err)
	}
	mk, _, err := c.PoolSources(c.Lanes.Marketing.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range tx {
		for _, b := range mk {
			if a.Name == b.Name {
				t.Errorf("source %s is in both lanes' pools", a.Name)
			}
		}
	}
}
