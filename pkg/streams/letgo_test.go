package streams

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// letGoScript runs letGo on stream KEYS[1], group ARGV[1], ids ARGV[2..].
var letGoScript = redis.NewScript(luaLetGo + `
letGo(KEYS[1], ARGV[1], {unpack(ARGV, 2)})
return 1
`)

// readStream adds n entries to stream k (its group created first) and
// reads them all for consumer c, returning their ids in order.
func readStream(t *testing.T, rdb *redis.Client, k string, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := rdb.XGroupCreateMkStream(ctx, k, Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	addEntries(t, rdb, k, n)
	got, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: "c", Streams: []string{k, ">"}, Count: int64(n)}).Result()
	if err != nil || len(got[0].Messages) != n {
		t.Fatalf("read %v %v", got, err)
	}
	var ids []string
	for _, m := range got[0].Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func addEntries(t *testing.T, rdb *redis.Client, k string, n int) {
	t.Helper()
	pipe := rdb.Pipeline()
	for range n {
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: k, Values: []string{"j", "{}"}})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func letGo(t *testing.T, rdb *redis.Client, k string, ids []string) {
	t.Helper()
	args := []any{Group}
	for _, id := range ids {
		args = append(args, id)
	}
	if err := letGoScript.Run(context.Background(), rdb, []string{k}, args...).Err(); err != nil {
		t.Fatal(err)
	}
}

func depthOf(t *testing.T, q *Queue, k string) StreamDepth {
	t.Helper()
	return q.streamDepths(context.Background(), []string{k})[0]
}

// TestLettingGoTrimsTheStream: entries acknowledged in order are dropped a
// node at a time (no entry deleted one by one), and the depth counts what
// is held and unread, not the entries left over.
func TestLettingGoTrimsTheStream(t *testing.T) {
	q, rdb, _ := setup(t, "c")
	ctx := context.Background()
	k := redistest.Prefix(t) + ":s"
	ids := readStream(t, rdb, k, 1000)
	addEntries(t, rdb, k, 7) // not read
	for i := 0; i < len(ids); i += 10 {
		letGo(t, rdb, k, ids[i:i+10])
		if d := depthOf(t, q, k); d.Held != int64(len(ids)-i-10) || d.Unread != 7 {
			t.Fatalf("after %d let go: depth %+v", i+10, d)
		}
	}
	info, err := rdb.XInfoStream(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	if info.Length > 107 || info.MaxDeletedEntryID != "0-0" {
		t.Fatalf("stream keeps %d entries (want ≤ 100 left over + 7 unread), deleted up to %s (want none deleted one by one)", info.Length, info.MaxDeletedEntryID)
	}
}

// TestAHeldEntryBoundsWhatStays: behind an entry still held, at most
// trimLag acknowledged entries stay (the rest are deleted one by one);
// once it goes, the stream is trimmed, and the unread entries are still
// counted exactly.
func TestAHeldEntryBoundsWhatStays(t *testing.T) {
	q, rdb, _ := setup(t, "c")
	ctx := context.Background()
	k := redistest.Prefix(t) + ":s"
	ids := readStream(t, rdb, k, trimLag+500)
	for i := 1; i < len(ids); i += 10 {
		letGo(t, rdb, k, ids[i:min(i+10, len(ids))])
	}
	if n := rdb.XLen(ctx, k).Val(); n > trimLag+1+10 {
		t.Fatalf("%d entries kept behind one held entry, want ≤ %d", n, trimLag+11)
	}
	addEntries(t, rdb, k, 7)
	if d := depthOf(t, q, k); d != (StreamDepth{Held: 1, Unread: 7}) {
		t.Fatalf("depth %+v, want 1 held, 7 unread", d)
	}
	letGo(t, rdb, k, ids[:1])
	if n := rdb.XLen(ctx, k).Val(); n > 100+7 {
		t.Fatalf("%d entries kept once nothing is held, want ≤ 107", n)
	}
	if d := depthOf(t, q, k); d != (StreamDepth{Unread: 7}) {
		t.Fatalf("depth %+v, want 7 unread", d)
	}
}
