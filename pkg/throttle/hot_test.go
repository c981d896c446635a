package throttle

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// Heat records a domain bucket's end for every engine; a later end
// stays, Hot leaves out ended ones, the next Heat drops them, and Reset
// cools the bucket.
func TestHeatIsSharedAndEnds(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	now := time.UnixMilli(1_800_000_000_000)
	a, b := DomainBucket("gmail", "a.test"), DomainBucket("gmail", "b.test")
	if err := Heat(ctx, rdb, ks, a, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if err := Heat(ctx, rdb, ks, a, now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := Heat(ctx, rdb, ks, b, now.Add(time.Second), now); err != nil {
		t.Fatal(err)
	}
	hot, err := Hot(ctx, rdb, ks, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(hot) != 2 || !hot[a].Equal(now.Add(time.Hour)) || !hot[b].Equal(now.Add(time.Second)) {
		t.Fatalf("hot %v: want %s until +1h (the later end) and %s until +1s", hot, a, b)
	}
	later := now.Add(2 * time.Second)
	if hot, _ := Hot(ctx, rdb, ks, later); len(hot) != 1 || hot[b] != (time.Time{}) {
		t.Fatalf("hot at +2s %v: want only %s", hot, a)
	}
	if err := Heat(ctx, rdb, ks, a, later.Add(time.Hour), later); err != nil {
		t.Fatal(err)
	}
	if n := rdb.ZCard(ctx, hotKey(ks)).Val(); n != 1 {
		t.Errorf("%d entries after an ended one's next Heat, want 1", n)
	}
	if err := Reset(ctx, rdb, ks, a); err != nil {
		t.Fatal(err)
	}
	if hot, _ := Hot(ctx, rdb, ks, later); len(hot) != 0 {
		t.Errorf("hot after Reset: %v", hot)
	}
}
