package warmup

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

var (
	day1      = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	delivered = outcome.Outcome{Status: outcome.Delivered, Code: 250}
	ipDefer   = outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeIP, Code: 421, Enhanced: "4.7.28"}
	mboxFull  = outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeRecipient, Code: 452, Enhanced: "4.2.2"}
)

func newWarmup(t *testing.T, sched ...int) *Warmup {
	t.Helper()
	plan := Plan{Schedule: sched, MaxDeferralRate: 0.05, MaxBounceRate: 0.02, MaxComplaintRate: 0.001, HourlyBurst: 4}
	return New(redistest.Client(t), keyspace.Space(redistest.Prefix(t)), map[string]Plan{"fresh": plan})
}

// sendDay takes units for source→provider hour by hour through the day
// starting at day, recording each as out(i); it returns how many were
// allowed and the last refusal's retry time.
func sendDay(t *testing.T, w *Warmup, provider string, day time.Time, want int, out func(i int) outcome.Outcome) (int, time.Time) {
	t.Helper()
	ctx := context.Background()
	sent := 0
	var retry time.Time
	for h := 0; h < 24 && sent < want; h++ {
		now := day.Add(time.Duration(h)*time.Hour + time.Minute)
		for sent < want {
			ok, at, err := w.Allow(ctx, "fresh", provider, now)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				retry = at
				break
			}
			if err := w.Record(ctx, "fresh", provider, out(sent), now); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	return sent, retry
}

// Acceptance 3 of issue #13: a source on day 1 of [100, 200, 400] sends
// 100 to a provider that day and the 101st waits until the next day; a
// healthy day moves the next day's cap to 200; a day with deferrals above
// the threshold holds it.
func TestRampAdvancesOnlyAfterAHealthyDay(t *testing.T) {
	ctx := context.Background()
	w := newWarmup(t, 100, 200, 400)
	ok := func(int) outcome.Outcome { return delivered }

	sent, _ := sendDay(t, w, "google", day1, 1000, ok)
	if sent != 100 {
		t.Fatalf("day 1 allowed %d, want 100", sent)
	}
	late := day1.Add(23*time.Hour + 59*time.Minute)
	allowed, at, err := w.Allow(ctx, "fresh", "google", late)
	if err != nil || allowed || !at.Equal(day1.AddDate(0, 0, 1)) {
		t.Fatalf("101st: ok %v retry %v err %v; want refused until %v", allowed, at, err, day1.AddDate(0, 0, 1))
	}
	// Another provider has its own cap.
	if allowed, _, _ := w.Allow(ctx, "fresh", "yahoo", late); !allowed {
		t.Fatal("google's cap held yahoo")
	}

	// Day 2: day 1 was healthy, so 200.
	day2 := day1.AddDate(0, 0, 1)
	st, err := w.Advance(ctx, "fresh", "google", day2)
	if err != nil || st.Day != 2 || st.Cap != 200 || st.Verdict != "healthy" || st.JudgedDay != "2026-01-15" || st.Sent != 0 {
		t.Fatalf("day 2 status %+v %v", st, err)
	}
	// Day 2 is spoilt: 10% of its attempts deferred for the IP (above 5%).
	sent, _ = sendDay(t, w, "google", day2, 1000, func(i int) outcome.Outcome {
		if i%10 == 0 {
			return ipDefer
		}
		return delivered
	})
	if sent != 200 {
		t.Fatalf("day 2 allowed %d, want 200", sent)
	}
	// Day 3 holds at 200 (the step of day 2).
	day3 := day2.AddDate(0, 0, 1)
	sent, _ = sendDay(t, w, "google", day3, 1000, ok)
	if st, _ := w.Advance(ctx, "fresh", "google", day3); sent != 200 || st.Day != 2 || st.Verdict != "hold" {
		t.Fatalf("day 3 allowed %d, status %+v; want 200 held", sent, st)
	}
	if d, _ := w.DayFigures(ctx, "fresh", "google", "2026-01-16"); d.Attempts != 200 || d.Deferred != 20 || d.Verdict != "hold" {
		t.Fatalf("day 2 figures %+v", d)
	}
	// Day 3 was healthy: day 4 reaches 400, the last step; after a healthy
	// day 4 the source is warm.
	day4 := day3.AddDate(0, 0, 1)
	if sent, _ = sendDay(t, w, "google", day4, 1000, ok); sent != 400 {
		t.Fatalf("day 4 allowed %d, want 400", sent)
	}
	day5 := day4.AddDate(0, 0, 1)
	if st, _ := w.Advance(ctx, "fresh", "google", day5); st.Ramping || st.Cap != 0 || st.Day != 4 {
		t.Fatalf("day 5 status %+v; want warm", st)
	}
	if sent, _ = sendDay(t, w, "google", day5, 1000, ok); sent != 1000 {
		t.Fatalf("warm source allowed %d of 1000", sent)
	}
}

// The acceptance's other branch on day 1 itself: deferrals above the
// threshold hold day 2 at 100; far above it, or complaints, step back;
// recipient-scoped deferrals (a full mailbox) are not the source's fault.
func TestUnhealthyDaysHoldOrStepBack(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		out       func(i int) outcome.Outcome
		complaint int
		wantDay   int
		verdict   string
	}{
		{"deferrals above 5%", func(i int) outcome.Outcome {
			if i%10 == 0 {
				return ipDefer
			}
			return delivered
		}, 0, 1, "hold"},
		{"mailbox full is not the source's fault", func(i int) outcome.Outcome {
			if i%2 == 0 {
				return mboxFull
			}
			return delivered
		}, 0, 2, "healthy"},
		{"hard bounces above 2%", func(i int) outcome.Outcome {
			if i%40 == 0 { // 3%
				return outcome.Outcome{Status: outcome.Bounced, Scope: outcome.ScopeRecipient, Code: 550, Enhanced: "5.1.1"}
			}
			return delivered
		}, 0, 1, "hold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWarmup(t, 100, 200, 400)
			if sent, _ := sendDay(t, w, "google", day1, 1000, c.out); sent != 100 {
				t.Fatalf("day 1 allowed %d", sent)
			}
			st, err := w.Advance(ctx, "fresh", "google", day1.AddDate(0, 0, 1))
			if err != nil || st.Day != c.wantDay || st.Verdict != c.verdict {
				t.Fatalf("day 2: %+v %v; want day %d (%s)", st, err, c.wantDay, c.verdict)
			}
		})
	}

	// A bad day on step 2 steps back to step 1: a complaint among 200.
	w := newWarmup(t, 100, 200, 400)
	ok := func(int) outcome.Outcome { return delivered }
	sendDay(t, w, "google", day1, 1000, ok)
	day2 := day1.AddDate(0, 0, 1)
	sendDay(t, w, "google", day2, 1000, ok)
	if err := w.Complaint(ctx, "fresh", "google", day2.Add(20*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Advance(ctx, "fresh", "google", day2.AddDate(0, 0, 1)); st.Day != 1 || st.Cap != 100 || st.Verdict != "back" {
		t.Fatalf("after a complaint: %+v; want back to day 1", st)
	}
	// Days without traffic hold: a week's silence keeps day 1.
	if st, _ := w.Advance(ctx, "fresh", "google", day2.AddDate(0, 0, 9)); st.Day != 1 || st.Verdict != "idle" {
		t.Fatalf("after silence: %+v; want day 1, idle", st)
	}
}

// The hourly cap is daily ÷ 24 × burst (100 → 17 with burst 4); a refusal
// for it names the next hour.
func TestHourlyCap(t *testing.T) {
	ctx := context.Background()
	w := newWarmup(t, 100, 200)
	now := day1.Add(10*time.Hour + 30*time.Minute)
	n, at, err := w.AllowN(ctx, "fresh", "google", 50, now)
	if err != nil || n != 17 || !at.Equal(day1.Add(11*time.Hour)) {
		t.Fatalf("AllowN(50) = %d, retry %v, %v; want 17 until 11:00", n, at, err)
	}
	st, _ := w.Advance(ctx, "fresh", "google", now)
	if st.Cap != 100 || st.HourlyCap != 17 || st.Sent != 17 || st.SentThisHour != 17 || st.Day != 1 || st.Days != 2 {
		t.Fatalf("status %+v", st)
	}
	if n, _, _ := w.AllowN(ctx, "fresh", "google", 5, now.Add(time.Hour)); n != 5 {
		t.Fatalf("next hour allowed %d of 5", n)
	}
	if ps, _ := w.Providers(ctx, "fresh"); len(ps) != 1 || ps[0] != "google" {
		t.Fatalf("providers %v", ps)
	}
}

// Engines share the cap: concurrent takers never overrun it.
func TestConcurrentAllowNeverOverruns(t *testing.T) {
	w := newWarmup(t, 60)
	now := day1.Add(time.Hour)
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				ok, _, err := w.Allow(context.Background(), "fresh", "google", now)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					total++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if total != 10 { // hourly cap: ceil(60 × 4 ÷ 24)
		t.Fatalf("allowed %d, want 10", total)
	}
}

// A source without a plan is warm: always allowed, nothing in Redis.
func TestWarmSourceAndPlanFor(t *testing.T) {
	w := newWarmup(t, 100)
	if ok, _, err := w.Allow(context.Background(), "old", "google", day1); !ok || err != nil {
		t.Fatalf("warm source refused: %v", err)
	}
	c, err := config.Parse("e.yaml", []byte("sources:\n  - {name: a, address: 127.0.0.2, warmup: {start: 2026-01-15}}\n  - {name: b, address: 127.0.0.3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plans := Plans(c)
	if p, ok := plans["a"]; !ok || len(p.Schedule) != len(DefaultSchedule) || p.Schedule[0] != 50 || p.HourlyBurst != 4 {
		t.Fatalf("plan of a: %+v %v", p, ok)
	}
	if _, ok := plans["b"]; ok {
		t.Fatal("b has a plan")
	}
}
