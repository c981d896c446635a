package bulk

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// fixture is a list on its own key prefix. hashes and audits are the
// list's keys, one per shard, which tests read directly.
type fixture struct {
	l              *suppression.List
	rdb            *redis.Client
	hashes, audits []string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	rdb := redistest.Client(t)
	space := keyspace.Space(redistest.Prefix(t))
	f := fixture{l: suppression.New(rdb, space), rdb: rdb}
	for n := range keyspace.Shards {
		f.hashes = append(f.hashes, space.In(n, "supp", "entries"))
		f.audits = append(f.audits, space.In(n, "supp", "audit"))
	}
	return f
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func hlen(t testing.TB, f fixture) int64 { return sum(t, f.hashes, f.rdb.HLen) }
func xlen(t testing.TB, f fixture) int64 { return sum(t, f.audits, f.rdb.XLen) }

// sum adds up one figure of each key.
func sum(t testing.TB, keys []string, of func(context.Context, string) *redis.IntCmd) int64 {
	t.Helper()
	var n int64
	for _, k := range keys {
		x, err := of(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += x
	}
	return n
}
