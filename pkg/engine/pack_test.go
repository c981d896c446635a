package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// A launch's packs hold jobs that need a step of their own: the campaign
// is paused before any engine runs (every job is parked), and some
// addresses are suppressed after the launch. Each such job leaves its pack
// on its own and gets its step; after the resume every other recipient
// gets exactly one message, the suppressed none, and the lane is empty.
func TestPackedJobsGetTheirOwnSteps(t *testing.T) {
	const n = 600 // ~50 a shard: packs of that many
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { log.note(to); return nil }})
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "packs", n, "example.test")
	if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	q := streams.New(rdb, ks, "probe")
	if depth, _, _ := q.Depth(ctx, streams.Marketing); depth != n {
		t.Fatalf("lane depth %d, want %d jobs", depth, n)
	}
	if entries := laneEntries(t, q); entries >= n/10 {
		t.Fatalf("%d lane entries for %d jobs: not packed", entries, n)
	}
	sup := suppression.New(rdb, ks)
	for i := 0; i < n; i += 30 {
		if err := sup.Add(ctx, suppression.Entry{Address: fmt.Sprintf("user%05d@example.test", i), Reason: suppression.Manual, Source: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := control.Pause(ctx, rdb, ks, "packs"); err != nil {
		t.Fatal(err)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	deadline := time.Now().Add(10 * time.Second)
	for {
		depth, _, _ := q.Depth(ctx, streams.Marketing)
		if depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still in the lane of a paused campaign", depth)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Count() != 0 {
		t.Fatalf("%d messages sent while paused", srv.Count())
	}
	if _, err := control.Resume(ctx, rdb, ks, "packs"); err != nil {
		t.Fatal(err)
	}
	s := enginetest.WaitFinished(t, store.New(rdb, ks), "packs", 30*time.Second)
	if s.Delivered != n-n/30 || s.Suppressed != n/30 || srv.Count() != n-n/30 {
		t.Fatalf("status %+v, %d messages", s, srv.Count())
	}
	for i := range n {
		want := 1
		if i%30 == 0 {
			want = 0
		}
		if got := log.count(fmt.Sprintf("user%05d@example.test", i)); got != want {
			t.Fatalf("user%05d: %d RCPTs, want %d", i, got, want)
		}
	}
}

// laneEntries counts the marketing lane's entries not yet let go of.
func laneEntries(t *testing.T, q *streams.Queue) int {
	t.Helper()
	n := 0
	for shard := range keyspace.Shards {
		got, err := redistest.Client(t).XLen(context.Background(), q.Stream(shard, streams.Marketing)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += int(got)
	}
	return n
}
