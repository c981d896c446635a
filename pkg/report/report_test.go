package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestScanVisitsEveryRecordOnce(t *testing.T) {
	const n = 2500 // past the listpack limit: a real hashtable, many HSCAN pages
	rdb := redistest.Client(t)
	ctx := context.Background()
	key := redistest.Prefix(t) + ":rcpt"
	at := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	vals := make([]any, 0, 2*n)
	for i := 0; i < n; i++ {
		rec := streams.Record{Status: "delivered", Code: 250, Reply: "ok", Host: "mx.example.test", Attempts: 1, At: at.UnixMilli(), Line: i + 2}
		if i%5 == 0 {
			rec = streams.Record{Status: "queued"}
		}
		vals = append(vals, fmt.Sprintf("u%d@example.test", i), rec.Encode())
	}
	if err := rdb.HSet(ctx, key, vals...).Err(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var got Row
	err := Scan(ctx, rdb, streams.Tally{Records: key}, 100, func(r Row) error {
		seen[r.Email]++
		if r.Email == "u1@example.test" {
			got = r
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("scan saw %d recipients, want %d", len(seen), n)
	}
	for e, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", e, c)
		}
	}
	want := Row{Email: "u1@example.test", Outcome: "delivered", Code: 250, Reply: "ok", Attempts: 1, Last: at, Host: "mx.example.test", Line: 3}
	want.History = []Attempt{{At: at, Outcome: "delivered", MX: "mx.example.test", Code: 250, Reply: "ok"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("row %+v, want %+v", got, want)
	}
	stop := fmt.Errorf("stop")
	if err := Scan(ctx, rdb, streams.Tally{Records: key}, 100, func(Row) error { return stop }); err != stop {
		t.Fatalf("Scan did not pass on fn's error: %v", err)
	}
}

func TestWriters(t *testing.T) {
	rows := []Row{
		{Email: "a@example.test", Outcome: "bounced", Code: 550, Enhanced: "5.1.1", Reply: "no such user, sorry", Attempts: 1,
			Last: time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC), Host: "mx1.example.test", Line: 2, Source: "ip2"},
		{Email: "b@example.test", Outcome: "suppressed", Reason: "suppressed"},
	}
	var b bytes.Buffer
	w, err := NewCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{Columns,
		{"a@example.test", "bounced", "550", "5.1.1", "no such user, sorry", "1", "2025-06-01T09:00:00Z", "mx1.example.test", "2", "ip2"},
		{"b@example.test", "suppressed", "", "", "suppressed", "0", "", "example.test", "", ""}}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Fatalf("CSV\n%q\nwant\n%q", recs, want)
	}

	b.Reset()
	j := NewJSONL(&b)
	_ = j.Write(rows[1])
	_ = j.Write(rows[0])
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n"))
	var m, m0 map[string]any
	if err := json.Unmarshal(lines[0], &m); err != nil || m["outcome"] != "suppressed" || m["last_attempt"] != nil || m["provider"] != "example.test" {
		t.Fatalf("JSONL %s: %v", b.String(), err)
	}
	// The CSV's provider column and JSON's provider key are one thing.
	if err := json.Unmarshal(lines[1], &m0); err != nil || m0["provider"] != "mx1.example.test" || m0["mx_host"] != nil {
		t.Fatalf("JSONL %s: %v", b.String(), err)
	}
}

func TestSummary(t *testing.T) {
	now := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	s := &Summary{Now: now}
	add := func(n int, domain, outcome string, ago time.Duration) {
		for i := 0; i < n; i++ {
			r := Row{Email: fmt.Sprintf("u%d@%s", i, domain), Outcome: outcome}
			if ago >= 0 {
				r.Last = now.Add(-ago)
			}
			s.Add(r)
		}
	}
	add(30, "big.test", "delivered", 10*time.Second) // the campaign began 20 s ago:
	add(10, "big.test", "delivered", 20*time.Second) // rate is over 20 s, not a minute
	add(5, "big.test", "deferred", 5*time.Second)    // not final: not in the rate
	add(20, "mid.test", "queued", -1)
	add(3, "small.test", "bounced", 5*time.Second)
	add(1, "tiny.test", "cancelled", -1)
	if s.All.Total != 69 || s.All.Queued != 25 || s.All.Deferred != 5 || s.All.Delivered != 40 || s.All.Bounced != 3 || s.All.Cancelled != 1 {
		t.Fatalf("totals %+v", s.All)
	}
	if r := s.Rate(); r != 43.0/20 {
		t.Fatalf("rate %v, want %v", r, 43.0/20)
	}
	top := s.Top(2)
	if len(top) != 3 || top[0].Name != "big.test" || top[0].Total != 45 || top[1].Name != "mid.test" ||
		top[2].Name != Other || top[2].Total != 4 || top[2].Bounced != 3 || top[2].Cancelled != 1 {
		t.Fatalf("top %+v", top)
	}

	// Old attempts fall out of the window.
	s = &Summary{Now: now}
	add(60, "x.test", "delivered", 2*time.Minute)
	add(30, "x.test", "delivered", 30*time.Second)
	if r := s.Rate(); r != 0.5 {
		t.Fatalf("rate %v, want 0.5 (30 in the last minute)", r)
	}
}

func TestSummaryBoundsGroups(t *testing.T) {
	s := &Summary{}
	for i := 0; i < MaxGroups+50; i++ {
		s.Add(Row{Email: fmt.Sprintf("u@d%d.test", i), Outcome: "delivered"})
	}
	if len(s.Groups) != MaxGroups+1 || s.Groups[Other].Total != 50 {
		t.Fatalf("%d groups, other %+v", len(s.Groups), s.Groups[Other])
	}
	if top := s.Top(0); top[len(top)-1].Name != Other || len(top) != MaxGroups+1 {
		t.Fatalf("Top(0) has %d groups", len(top))
	}
}
