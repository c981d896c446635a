package slotcheck

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// TestFindsCrossSlotKeys: scripts, multi-key commands, XREAD and
// transactions across slots are caught; the same within one hash tag are
// not.
func TestFindsCrossSlotKeys(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	h := &Hook{}
	info, err := rdb.Command(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	h.info = info
	rdb.AddHook(h)
	script := redis.NewScript(`return #KEYS`)
	ok := func() {
		_ = script.Run(ctx, rdb, []string{"{t}:a", "{t}:b"}, 1).Err()
		_ = rdb.Del(ctx, "{t}:a", "{t}:b").Err()
		_ = rdb.MSet(ctx, "{t}:a", 1, "{t}:b", 2).Err()
		_ = rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"{t}:x", "{t}:y", "0", "0"}, Block: -1}).Err()
		_, _ = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "{t}:a")
			p.Incr(ctx, "{t}:b")
			return nil
		})
		_ = rdb.Get(ctx, "plain").Err()
	}
	ok()
	if v := h.Violations(); len(v) != 0 || h.Checked() < 6 {
		t.Fatalf("one slot: %v (%d checked)", v, h.Checked())
	}
	_ = script.Run(ctx, rdb, []string{"{t}:a", "{u}:b"}, 1).Err()
	_ = rdb.Del(ctx, "{t}:a", "{u}:b").Err()
	_ = rdb.MSet(ctx, "{t}:a", 1, "{u}:b", 2).Err()
	_ = rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"{t}:x", "{u}:y", "0", "0"}, Block: -1}).Err()
	_, _ = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "{t}:a")
		p.Incr(ctx, "{u}:b")
		return nil
	})
	if v := h.Violations(); len(v) != 5 {
		t.Fatalf("want 5 violations (eval, del, mset, xread, multi), got %d: %v", len(v), v)
	}
}
