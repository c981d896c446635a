package suppression

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// fixture is a list on its own key prefix, with a hook counting what goes
// to Redis.
type fixture struct {
	l     *List
	rdb   *redis.Client
	space keyspace.Space
	hook  *countHook
}

func newFixture(t testing.TB, opts ...Option) fixture {
	t.Helper()
	rdb := redistest.Client(t)
	h := &countHook{}
	rdb.AddHook(h)
	space := keyspace.Space(redistest.Prefix(t))
	return fixture{l: New(rdb, space, opts...), rdb: rdb, space: space, hook: h}
}

// countHook counts round trips: single commands and pipelines, leaving
// out the handshake (HELLO, CLIENT SETINFO) of a newly dialled connection.
type countHook struct{ cmds, pipes atomic.Int64 }

func handshake(c redis.Cmder) bool { return c.Name() == "hello" || c.Name() == "client" }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if !handshake(c) {
			h.cmds.Add(1)
		}
		return next(ctx, c)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		if !handshake(cs[0]) {
			h.pipes.Add(1)
		}
		return next(ctx, cs)
	}
}
func (h *countHook) reset()                 { h.cmds.Store(0); h.pipes.Store(0) }
func (h *countHook) counts() (int64, int64) { return h.cmds.Load(), h.pipes.Load() }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustAdd(t testing.TB, l *List, es ...Entry) {
	t.Helper()
	for _, e := range es {
		if err := l.Add(context.Background(), e); err != nil {
			t.Fatalf("Add(%+v): %v", e, err)
		}
	}
}

// hlen is the number of entries in every shard's hash together.
func hlen(t testing.TB, f fixture) int64 { return sumShards(t, f.l.entriesKey, f.rdb.HLen) }

// xlen is the length of every shard's audit stream together.
func xlen(t testing.TB, f fixture) int64 { return sumShards(t, f.l.auditKey, f.rdb.XLen) }

// sumShards adds up one figure of each shard's key.
func sumShards(t testing.TB, key func(int) string, of func(context.Context, string) *redis.IntCmd) int64 {
	t.Helper()
	var sum int64
	for n := range keyspace.Shards {
		x, err := of(context.Background(), key(n)).Result()
		if err != nil {
			t.Fatal(err)
		}
		sum += x
	}
	return sum
}
