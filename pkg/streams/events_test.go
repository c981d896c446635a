package streams

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// TestEventsAreAppendedWithTheirChange checks each script appends exactly
// one event per change it makes, and none when it changes nothing.
func TestEventsAreAppendedWithTheirChange(t *testing.T) {
	q, _, tl := setup(t, "ev1")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := 0; i < 3; i++ {
		if err := b.Add(campaignJob(i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = b.Add(campaignJob(1)) // a duplicate: no event
	b.AddFinal(campaignJob(9), Record{Status: "suppressed", Reason: "hard_bounce"})
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds, _, err := q.Read(ctx, Marketing, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("read %d jobs, %v", len(ds), err)
	}
	now := time.Now()
	rec := Record{Status: "delivered", Code: 250, Enhanced: "2.0.0", Reply: "OK", Host: "mx.example.test", Attempts: 1, At: now.UnixMilli()}
	if res, err := q.Settle(ctx, ds[0], tl, rec, nil, time.Time{}); err != nil || res != Recorded {
		t.Fatalf("settle: %v %v", res, err)
	}
	if res, _ := q.Settle(ctx, ds[0], tl, rec, nil, time.Time{}); res != NotHeld { // nothing recorded, no event
		t.Fatalf("second settle: %v", res)
	}
	next := ds[1].Job
	next.Attempts++
	if _, err := q.Settle(ctx, ds[1], tl, Record{Status: "deferred", Code: 451, Attempts: 1}, &next, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Settle(ctx, ds[2], tl, Record{Status: "bounced", Reason: "expired", Attempts: 7}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := q.Amend(ctx, tl, ds[0].RecordField(), nil, func(r Record) *Amendment {
		r.Reason = "complaint"
		return &Amendment{Record: r, Event: &events.Event{Type: events.Complained, Recipient: ds[0].To}}
	}); err != nil || !ok {
		t.Fatalf("amend: %v %v", ok, err)
	}
	got := shardEvents(t, q)
	want := []events.Type{events.Queued, events.Queued, events.Queued, events.Suppressed, events.Delivered, events.Deferred, events.Expired, events.Complained}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %v", len(got), got, want)
	}
	for i, e := range got {
		if e.Type != want[i] || e.ID == "" {
			t.Errorf("event %d: %+v, want %s", i, e, want[i])
		}
	}
	d := got[4]
	if d.Campaign != "x" || d.Job != ds[0].ID || d.Recipient != ds[0].To || d.Code != 250 || d.Enhanced != "2.0.0" ||
		d.MX != "mx.example.test" || d.Attempt != 1 || d.Time.UnixMilli() != now.UnixMilli() {
		t.Errorf("delivered event %+v", d)
	}
}

func TestCancelParkedAppendsCancelledEvents(t *testing.T) {
	q, _, tl := setup(t, "ev2")
	ctx := context.Background()
	b := &Batch{Lane: Marketing, Tally: tl}
	for i := 0; i < 2; i++ {
		_ = b.Add(campaignJob(i))
	}
	if _, err := q.Enqueue(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds, _, _ := q.Read(ctx, Marketing, 10)
	sh := keyspace.ShardOf(campaignJob(0).To)
	park := q.ks.In(sh, "parked-test")
	for _, d := range ds {
		if _, err := q.Park(ctx, d, park); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.CancelParked(ctx, sh, park, tl, 10); err != nil || n != 2 {
		t.Fatalf("cancel: %d %v", n, err)
	}
	got := shardEvents(t, q)
	if len(got) != 4 {
		t.Fatalf("events %+v", got)
	}
	if c := got[3]; c.Type != events.Cancelled || c.Campaign != "x" || c.Job != "x/1" || c.Recipient != campaignJob(1).To || c.Time.IsZero() {
		t.Errorf("cancelled event %+v", c)
	}
}

// shardEvents reads every shard's events stream, in order (the test's jobs
// are of one shard), an entry of several events (events.BatchField,
// events.RunField) as its events.
func shardEvents(t *testing.T, q *Queue) []events.Event {
	t.Helper()
	var out []events.Event
	for sh := 0; sh < keyspace.Shards; sh++ {
		ms, err := q.rdb.XRange(context.Background(), q.EventsKey(sh), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			payloads := []string{}
			if one, ok := m.Values[events.Field].(string); ok {
				payloads = append(payloads, one)
			}
			if many, ok := m.Values[events.BatchField].(string); ok {
				var raws []json.RawMessage
				if err := json.Unmarshal([]byte(many), &raws); err != nil {
					t.Fatal(err)
				}
				for _, r := range raws {
					payloads = append(payloads, string(r))
				}
			}
			if run, ok := m.Values[events.RunField].(string); ok {
				r, err := events.DecodeRun(run)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, r.Events()...)
			}
			for _, p := range payloads {
				e, err := events.Decode(m.ID, p)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, e)
			}
		}
	}
	return out
}
