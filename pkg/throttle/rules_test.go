package throttle

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// TestShippedRulesMatchTheProvidersReplies checks the shipped rules
// against the replies of provider-responses.md, classified as the
// engine classifies them.
func TestShippedRulesMatchTheProvidersReplies(t *testing.T) {
	f, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := compileRules(f.Rules)
	if err != nil {
		t.Fatal(err)
	}
	match := func(provider string, o outcome.Outcome) []string {
		var names []string
		for _, r := range rules {
			if r.applies(provider) && r.re.MatchString(replyText(o)) {
				names = append(names, r.Name)
			}
		}
		return names
	}
	greeting := func(code int, text string) outcome.Outcome {
		o := deliver.Classify(code, "", text)
		o.Stage = outcome.StageGreeting
		return o
	}
	for _, c := range []struct {
		provider string
		out      outcome.Outcome
		want     []string
	}{
		{"yahoo", deliver.Classify(421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"), []string{"yahoo-tss04"}},
		{"google", deliver.Classify(421, "4.7.28", "Gmail has detected an unusual rate of unsolicited email originating from your IP address."), []string{"gmail-4.7.28-rate", "gmail-4.7.28-repeated"}},
		{"google", deliver.Classify(421, "4.7.0", "This message is suspicious due to the very low reputation of the sending domain."), []string{"gmail-4.7.0-reputation"}},
		{"microsoft", deliver.Classify(451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."), []string{"microsoft-4.7.650"}},
		{"microsoft", deliver.Classify(550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150)."), []string{"microsoft-s3150"}},
		{"microsoft", deliver.Classify(421, "", "RP-001 (BAY004-MC1F4) Unfortunately, some messages from 192.0.2.1 weren't sent. We have limits for how many messages can be sent per hour and per day."), []string{"microsoft-rp001"}},
		{"comcast", greeting(421, "mx.comcast.test comcast Too many sessions opened [Too many sessions opened]"), []string{"comcast-sessions"}},
		// Recipient-scoped and unrelated replies match nothing.
		{"google", deliver.Classify(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered."), nil},
		{"microsoft", deliver.Classify(451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)"), nil},
		// A rule is for its provider only.
		{"google", deliver.Classify(421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred"), nil},
		// sluice's own outcomes never match, whatever their text.
		{"yahoo", outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeProvider, Text: "[TSS04] suspended until later"}, nil},
		{"yahoo", outcome.Outcome{Status: outcome.Deferred, Code: 421, Stage: outcome.StageQueue, Text: "[TSS04]"}, nil},
	} {
		got := match(c.provider, c.out)
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("%s %q: rules %v, want %v", c.provider, replyText(c.out), got, c.want)
		}
	}
}

var tss04 = deliver.Classify(421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints")

func TestSuspendRuleHoldsTheProviderOnly(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 10})
	l := e.limiter("e1", 0)
	other := e.limiter("e2", 0)
	p, _ := admit(t, l, "yahoo", "marketing")
	// sluice's own text never suspends.
	p.Done(outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeProvider, Stage: outcome.StageQueue, Text: "[TSS04]"})
	if p, _ := admit(t, l, "yahoo", "marketing"); p == nil {
		t.Fatal("suspended by a reply sluice made up")
	} else {
		p.Done(tss04)
	}
	now := e.clk.now()
	p, at := admit(t, l, "yahoo", "transactional")
	if p != nil || at.Sub(now) < 2*time.Hour-time.Second || at.Sub(now) > 2*time.Hour {
		t.Fatalf("after TSS04: permit %v, retry at +%v; want held 2h", p != nil, at.Sub(now))
	}
	// Another engine learns it from Redis at its first step.
	if p, at := admit(t, other, "yahoo", "marketing"); p != nil || at.Sub(now) < 2*time.Hour-time.Second {
		t.Fatalf("other engine: permit %v, retry at +%v", p != nil, at.Sub(now))
	}
	if p, _ := admit(t, l, "google", "marketing"); p == nil {
		t.Fatal("a Yahoo suspension held Google")
	}
	s := e.status("yahoo")
	if s.State != "suspended" || s.SuspendedBy != "tss04" || s.Decreases != 1 {
		t.Fatalf("status %+v", s)
	}
	e.clk.add(2*time.Hour + time.Second)
	if p, _ := admit(t, l, "yahoo", "marketing"); p == nil {
		t.Fatal("still held after the suspension ended")
	}
}

func TestThresholdRuleCapsOnTheSecondMatch(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 10})
	l := e.limiter("e1", 0)
	gmail := deliver.Classify(421, "4.7.28", "rate limited")
	p, _ := admit(t, l, "bigmail", "marketing")
	p.Done(gmail)
	s := e.status("bigmail")
	if s.State == "capped" || s.Decreases != 1 {
		t.Fatalf("after one match: %+v", s)
	}
	rate := s.Rate
	e.clk.add(time.Minute)
	p, _ = admit(t, l, "bigmail", "marketing")
	p.Done(gmail)
	s = e.status("bigmail")
	if s.State != "capped" || s.CappedBy != "slowdown" || s.Connections != 2 || s.Rate > rate*0.5*1.01 {
		t.Fatalf("after two matches in 10 min: %+v; want capped at half of %.1f/s, 2 connections", s, rate)
	}
	if until := s.CappedUntil.Sub(e.clk.now()); until < 29*time.Minute || until > 30*time.Minute {
		t.Fatalf("capped for %v", until)
	}
}
