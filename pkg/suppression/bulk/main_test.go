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

// fixture is a list on its own key prefix. hash and audit are the list's
// keys, which tests read directly.
type fixture struct {
	l           *suppression.List
	rdb         *redis.Client
	hash, audit string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	rdb := redistest.Client(t)
	space := keyspace.Space(redistest.Prefix(t))
	return fixture{
		l: suppression.New(rdb, space), rdb: rdb,
		hash: space.Key("supp", "entries"), audit: space.Key("supp", "audit"),
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func hlen(t testing.TB, f fixture) int64 {
	t.Helper()
	n, err := f.rdb.HLen(context.Background(), f.hash).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func xlen(t testing.TB, f fixture) int64 {
	t.Helper()
	n, err := f.rdb.XLen(context.Background(), f.audit).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
