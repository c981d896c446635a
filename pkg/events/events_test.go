package events

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func newLog(t *testing.T) (*Log, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	return New(rdb, keyspace.Space(redistest.Prefix(t))), rdb
}

func TestAppendReadTrim(t *testing.T) {
	ctx := context.Background()
	l, rdb := newLog(t)
	if last, err := l.Last(ctx); err != nil || last != (Cursor{}) {
		t.Fatalf("last of nothing: %v %v", last, err)
	}
	// An event 10 days old (its id from its time) in shard 4, then a new one.
	old := time.Now().Add(-10 * 24 * time.Hour)
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.keys[4], ID: MinID(old),
		Values: []string{Field, Event{Type: Paused, Time: old, Campaign: "c"}.Encode()}}).Err(); err != nil {
		t.Fatal(err)
	}
	id, err := l.Append(ctx, Event{Type: Resumed, Campaign: "c", Recipient: "Ann@Example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d/", keyspace.ShardOf("ann@example.test")); !strings.HasPrefix(id, want) {
		t.Fatalf("appended as %s, want in shard %s", id, want)
	}
	evs, err := l.Read(ctx, "0", 10, -1)
	if err != nil || len(evs) != 2 || evs[1].ID != id || evs[1].Type != Resumed || evs[1].Time.IsZero() || evs[0].Campaign != "c" {
		t.Fatalf("read %+v %v", evs, err)
	}
	if evs[0].ID != "4/"+MinID(old) {
		t.Fatalf("old event's id %s", evs[0].ID)
	}
	if n, _ := l.Behind(ctx, evs[0].ID, 10); n != 1 {
		t.Fatalf("behind the first: %d", n)
	}
	// Trimming is approximate (whole stream nodes): it runs and keeps
	// the new event.
	if _, err := l.Trim(ctx, time.Now(), DefaultRetention); err != nil {
		t.Fatal(err)
	}
	last, err := l.Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if evs, _ := l.Read(ctx, last.String(), 10, -1); len(evs) != 0 {
		t.Fatalf("after Last: %+v", evs)
	}
	if n, _ := l.Behind(ctx, last.String(), 10); n != 0 {
		t.Fatalf("behind Last: %d", n)
	}
}

// fill writes entries with fixed ids: single events, a batch entry of
// three, a run of two, and one in the unsharded stream of earlier
// versions.
func fill(t *testing.T, l *Log, rdb *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	ev := func(r string) string {
		return Event{Type: Delivered, Recipient: r, Time: time.UnixMilli(1000)}.Encode()
	}
	add := func(src int, id string, vals ...string) {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.keys[src], ID: id, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add(3, "1000-0", Field, ev("a"))
	add(7, "1000-0", Field, ev("b"))
	add(legacy, "1000-0", Field, ev("old"))
	add(3, "1001-0", BatchField, "["+ev("c1")+","+ev("c2")+","+ev("c3")+"]")
	add(0, "1002-0", Field, ev("d"))
	add(11, "1002-0", Field, ev("e"))
	run, _ := Run{Type: Queued, Time: time.UnixMilli(1000), Campaign: "k", Jobs: []string{"k/2", "g1", "k/3", "g2"}}.Append(nil)
	add(5, "1002-1", RunField, string(run))
	add(7, "1003-5", Field, ev("f"))
	return []string{"3/1000-0 a", "7/1000-0 b", "1000-0 old", "3/1001-0/0 c1", "3/1001-0/1 c2", "3/1001-0/2 c3",
		"0/1002-0 d", "11/1002-0 e", "5/1002-1/0 g1", "5/1002-1/1 g2", "7/1003-5 f"}
}

func show(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID + " " + e.Recipient
	}
	return out
}

// TestMergedOrderInSmallReads: the shards read as one stream in id order,
// page by page through a cursor that is stored as text between pages
// (as a webhook does), batch entries split across pages; and a read
// after an event ID goes on exactly after it. Both on one Redis and
// stream by stream (as on a cluster).
func TestMergedOrderInSmallReads(t *testing.T) {
	ctx := context.Background()
	for _, perSource := range []bool{false, true} {
		l, rdb := newLog(t)
		l.perSource = perSource
		want := fill(t, l, rdb)
		for _, page := range []int{1, 2, 4, 100} {
			var got []Event
			text := ""
			for range 20 {
				c, err := ParseCursor(text)
				if err != nil {
					t.Fatal(err)
				}
				evs, next, err := l.ReadFrom(ctx, c, page, -1)
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) > page {
					t.Fatalf("page %d: read %d", page, len(evs))
				}
				got = append(got, evs...)
				text = next.String()
			}
			if fmt.Sprint(show(got)) != fmt.Sprint(want) {
				t.Errorf("perSource %v page %d:\n got %v\nwant %v", perSource, page, show(got), want)
			}
		}
		for i, w := range want {
			id, _, _ := strings.Cut(w, " ")
			evs, err := l.Read(ctx, id, 100, -1)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(show(evs)) != fmt.Sprint(want[i+1:]) {
				t.Errorf("after %s: %v", id, show(evs))
			}
			if n, _ := l.Behind(ctx, id, 100); n != int64(len(want)-i-1) {
				t.Errorf("behind %s: %d, want %d", id, n, len(want)-i-1)
			}
		}
	}
}

// TestCursorKeepsALateShard: an entry appended to one shard with an id
// older than what the reader already read from another (clocks of
// cluster nodes differ) is still read through the cursor.
func TestCursorKeepsALateShard(t *testing.T) {
	ctx := context.Background()
	l, rdb := newLog(t)
	add := func(src int, id, r string) {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.keys[src], ID: id, Values: []string{Field, Event{Type: Queued, Recipient: r}.Encode()}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add(1, "2000-0", "a")
	evs, c, err := l.ReadFrom(ctx, Cursor{}, 10, -1)
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	add(2, "1500-0", "late")
	add(1, "2001-0", "b")
	evs, _, err = l.ReadFrom(ctx, c, 10, -1)
	if err != nil || fmt.Sprint(show(evs)) != "[2/1500-0 late 1/2001-0 b]" {
		t.Fatalf("after the cursor: %v %v", show(evs), err)
	}
}

// TestBlockingRead: a read waiting for events returns soon after one is
// appended to any shard, on one Redis and polling as on a cluster.
func TestBlockingRead(t *testing.T) {
	ctx := context.Background()
	for _, perSource := range []bool{false, true} {
		l, _ := newLog(t)
		l.perSource = perSource
		c, err := l.Last(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, _ = l.Append(ctx, Event{Type: Paused, Campaign: "x"})
		}()
		start := time.Now()
		evs, _, err := l.ReadFrom(ctx, c, 10, 5*time.Second)
		if err != nil || len(evs) != 1 || evs[0].Type != Paused {
			t.Fatalf("perSource %v: %+v %v", perSource, evs, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("perSource %v: returned after %v", perSource, d)
		}
		if evs, _, err := l.ReadFrom(ctx, c, 10, 300*time.Millisecond); err != nil || len(evs) != 1 {
			t.Fatalf("perSource %v: read again: %+v %v", perSource, evs, err)
		}
	}
}

func TestSince(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for in, want := range map[string]string{
		"1h":                "1699996399999-18446744073709551615",
		"1700000000000-5":   "1700000000000-5",
		"1700000000000":     "1700000000000-0",
		"3/1700000000000-5": "1700000000000-5,1700000000000-5,1700000000000-5,1700000000000-5,1700000000000-4",
	} {
		c, err := Since(in, now)
		if err != nil {
			t.Errorf("Since(%q): %v", in, err)
			continue
		}
		if got := c.String(); !strings.HasPrefix(got, want) {
			t.Errorf("Since(%q) = %s, want %s...", in, got, want)
		}
	}
	c, _ := Since("3/1700000000000-5/1", now)
	if p := c.pos[3]; p.part != 2 || p.entry.String() != "1700000000000-5" {
		t.Errorf("after event 1 of a batch: %+v", p)
	}
	for _, bad := range []string{"", "yesterday", "-1h", "12-x", "12/1-0", "3/1-0/x"} {
		if _, err := Since(bad, now); err == nil {
			t.Errorf("Since(%q) accepted", bad)
		}
	}
	if _, err := ParseType("sent"); err == nil {
		t.Error("ParseType(sent) accepted")
	}
}

// The same, for chosen cases: a time json refuses, negative numbers,
// non-ASCII and escapes in every field kind.
func TestEncodeMatchesEncodingJSONCases(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 25, 4, 761_900_000, time.FixedZone("x", 3600))
	for _, e := range []Event{
		{},
		{Type: Queued, Time: at, Campaign: "spring", Job: "spring/2", Recipient: "user@example.test"},
		{ID: "3/1-0", Type: Bounced, Time: at.Add(239 * time.Millisecond), Campaign: "c", Job: "c/9", Recipient: "Zoë@bücher.test",
			Code: 550, Enhanced: "5.1.1", Reply: `no such user <x@y> & "z"` + "\u2028\xff", MX: "mx.example.test", Attempt: 3, Reason: "unknown"},
		{Type: Paused, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Reason: "guardrail"},
		{Type: Delivered, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, // outside RFC 3339: json refuses
		{Type: Deferred, Time: time.UnixMilli(1000), Code: -1, Attempt: -2},
	} {
		c := e
		c.ID, c.Time = "", c.Time.UTC().Truncate(time.Millisecond)
		want, _ := json.Marshal(c)
		if got := e.Encode(); got != string(want) {
			t.Errorf("Encode(%+v)\n got %s\nwant %s", e, got, want)
		}
	}
}

// TestRunEntries: a run entry reads as its events, each with the run's
// type, time and campaign and its own job and recipient; one that does
// not decode reads as one event saying why.
func TestRunEntries(t *testing.T) {
	ctx := context.Background()
	l, rdb := newLog(t)
	at := time.UnixMilli(1764560000123).UTC()
	run, ok := Run{Type: Queued, Time: at, Campaign: "spring", Jobs: []string{"spring/2", "ann@example.test", "spring/3", "bob@example.test"}}.Append(nil)
	if !ok {
		t.Fatal("run not encoded")
	}
	for i, v := range []string{string(run), `{"type":"queued","jobs":["spring/4"]}`} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.keys[2], ID: fmt.Sprintf("%d-0", 1000+i), Values: []string{RunField, v}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := l.Read(ctx, "0", 10, -1)
	if err != nil || len(evs) != 3 {
		t.Fatalf("read %+v %v", evs, err)
	}
	want := []Event{
		{ID: "2/1000-0/0", Type: Queued, Time: at, Campaign: "spring", Job: "spring/2", Recipient: "ann@example.test"},
		{ID: "2/1000-0/1", Type: Queued, Time: at, Campaign: "spring", Job: "spring/3", Recipient: "bob@example.test"},
	}
	for i, w := range want {
		if e := evs[i]; e.ID != w.ID || e.Type != w.Type || !e.Time.Equal(w.Time) || e.Campaign != w.Campaign || e.Job != w.Job || e.Recipient != w.Recipient {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
	if e := evs[2]; e.ID != "2/1001-0" || !strings.Contains(e.Reason, "not in pairs") {
		t.Errorf("the bad run: %+v", e)
	}
	if n, _ := l.Behind(ctx, "0", 10); n != 3 {
		t.Errorf("behind the start: %d, want 3", n)
	}
}
