package clustere2e

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestMain silences go-redis's own log: a killed master makes every
// client print each failed dial, and the tests count what matters.
// clustertest starts each test's cluster itself (redis-server and
// redis-cli on PATH; `make test` installs them).
func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
