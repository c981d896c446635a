package events

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestAppendReadTrim(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	l := New(rdb, keyspace.Space(redistest.Prefix(t)))
	if last, err := l.Last(ctx); err != nil || last != "0-0" {
		t.Fatalf("last of nothing: %q %v", last, err)
	}
	// An event 10 days old (its id from its time), then a new one.
	old := time.Now().Add(-10 * 24 * time.Hour)
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.key, ID: MinID(old),
		Values: []string{Field, Event{Type: Paused, Time: old, Campaign: "c"}.Encode()}}).Err(); err != nil {
		t.Fatal(err)
	}
	id, err := l.Append(ctx, Event{Type: Resumed, Campaign: "c"})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Read(ctx, "0", 10, -1)
	if err != nil || len(evs) != 2 || evs[1].ID != id || evs[1].Type != Resumed || evs[1].Time.IsZero() || evs[0].Campaign != "c" {
		t.Fatalf("read %+v %v", evs, err)
	}
	if n, _ := l.Behind(ctx, evs[0].ID, 10); n != 1 {
		t.Fatalf("behind the first: %d", n)
	}
	// Trimming is approximate (whole stream nodes): it runs and keeps
	// the new event.
	if _, err := l.Trim(ctx, time.Now(), DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if last, _ := l.Last(ctx); last != id {
		t.Fatalf("last %s, want %s", last, id)
	}
}

func TestSince(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for in, want := range map[string]string{"": "$", "1h": "1699996400000-0", "1700000000000-5": "1700000000000-5", "1700000000000": "1700000000000-0"} {
		if got, err := Since(in, now); err != nil || got != want {
			t.Errorf("Since(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "12-x"} {
		if _, err := Since(bad, now); err == nil {
			t.Errorf("Since(%q) accepted", bad)
		}
	}
	if _, err := ParseType("sent"); err == nil {
		t.Error("ParseType(sent) accepted")
	}
}
