package clustere2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
)

// TestScaleOut: a fourth master joins mid-campaign and takes over, keys
// and all, the slots of four of the twelve shards and of the deployment's
// own hash tag (the campaign's definition and counters' index, the
// engines' heartbeats), one slot after the other while both engines
// deliver — what an operator adding a node and resharding does. Commands
// meanwhile get ASK (the key went over) and TRYAGAIN (a script's keys are
// split between the two nodes) and follow them. Every recipient arrives
// exactly once, no engine restarts, the campaign's status is whole, and
// the new master ends up holding the moved shards' keys.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	n := 6000
	if testing.Short() {
		n = 3000
	}
	w := newWorld(t, "grow", n)
	// A receiver's think time: jobs in flight, and a campaign that lasts
	// seconds (32 sessions at 20 ms a message), the moves a fraction of it.
	w.rx.delay.Store(int64(20 * time.Millisecond))
	added := w.c.AddMaster(t) // joins empty: nothing of the campaign on it yet
	w.launch(launch.Options{})
	for _, name := range []string{"e1", "e2"} {
		enginetest.Start(t, w.config(name, w.rx.Addr))
	}
	if !waitFor(60*time.Second, func() bool { return w.rx.total() >= n/3 }) {
		t.Fatalf("a third not delivered after 60s: receiver has %d, status %+v", w.rx.total(), w.status())
	}

	slots := []int{keyspace.Slot(w.ks.Key("campaign", w.id))}
	for shard := range 4 {
		slots = append(slots, keyspace.Slot(w.ks.Tag(shard)))
	}
	began := time.Now()
	atMove := w.rx.total()
	for _, slot := range slots {
		w.c.MoveSlot(t, slot, added)
	}
	movedIn := time.Since(began)
	afterMove := w.rx.total()
	if afterMove >= n {
		t.Fatalf("the campaign ended before the slots had moved (%d of %d arrived): the moves must happen mid-campaign", afterMove, n)
	}
	if !w.waitFinished(90 * time.Second) {
		t.Fatalf("campaign not finished 90s after the slots moved: %+v, receiver has %d of %d", w.status(), w.rx.total(), n)
	}
	took := time.Since(began)
	w.rx.settle() // attempts still in the receiver's think time count too

	got := count(w.rx.copies(), n)
	st := w.status()
	node := redis.NewClient(&redis.Options{Addr: added})
	defer node.Close()
	var onAdded []string
	for _, slot := range slots {
		k, err := node.ClusterCountKeysInSlot(context.Background(), slot).Result()
		if err != nil {
			t.Fatal(err)
		}
		onAdded = append(onAdded, fmt.Sprintf("slot %d: %d keys", slot, k))
		if k == 0 {
			t.Errorf("slot %d has no key on the added master %s", slot, added)
		}
	}
	// ASK: a command's keys had gone over; TRYAGAIN: they were split
	// between the two nodes; MOVED: a client's slot map was behind.
	ask, split, moved := w.c.Replied(t, "ASK"), w.c.Replied(t, "TRYAGAIN"), w.c.Replied(t, "MOVED")
	t.Logf("scale-out: %d recipients; %d slots moved to %s in %v, from %d to %d arrived (ASK %d, TRYAGAIN %d, MOVED %d); finished %v after the move began; %s; on the new master %v",
		n, len(slots), added, movedIn.Round(time.Millisecond), atMove, afterMove, ask, split, moved, took.Round(100*time.Millisecond), got, onAdded)
	if ask+split == 0 {
		t.Error("no ASK nor TRYAGAIN while the slots moved: the engines never met a slot in the middle of its move")
	}
	if got.lost != 0 || got.duplicates != 0 || got.strangers != 0 {
		t.Errorf("each recipient must arrive exactly once across the resharding: %s", got)
	}
	if st.Delivered != int64(n) || st.Queued != 0 {
		t.Errorf("status %+v, want %d delivered and none queued", st, n)
	}
	w.beatSince(began.Add(movedIn), "e1", "e2")
}
