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
	// send sends each kind of command with keys under tag {t} and other.
	send := func(other string) {
		_ = script.Run(ctx, rdb, []string{"{t}:a", other}, 1).Err()
		_ = rdb.Del(ctx, "{t}:a", other).Err()
		_ = rdb.MSet(ctx, "{t}:a", 1, other, 2).Err()
		_ = rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"{t}:x", other, "0", "0"}, Block: -1}).Err()
		_, _ = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "{t}:a")
			p.Incr(ctx, other)
			return nil
		})
		_ = rdb.Get(ctx, "plain").Err()
	}
	send("{t}:b")
	if v := h.Violations(); len(v) != 0 || h.Checked() < 6 {
		t.Fatalf("one slot: %v (%d checked)", v, h.Checked())
	}
	send("{u}:b")
	if v := h.Violations(); len(v) != 5 {
		t.Fatalf("want 5 violations (eval, del, mset, xread, multi), got %d: %v", len(v), v)
	}
}
