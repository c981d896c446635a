package streams

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// LoadScripts loads into Redis (every master of a cluster) the scripts of
// a job's way from its lane to its settle (route, take, settle), so that
// the first job after an engine starts on a fresh or restarted Redis
// pays no NOSCRIPT round trip at each step. Every script still loads
// itself when missing; this only spares the first job the wait.
func (q *Queue) LoadScripts(ctx context.Context) error {
	return load(ctx, q.rdb, routeScript, takeScript, afterTakeScript, settleRunScript)
}

// LoadEnqueueScript does the same for a launch's enqueue script: a
// launcher loads it while it validates its list.
func (q *Queue) LoadEnqueueScript(ctx context.Context) error {
	return load(ctx, q.rdb, enqueueScript)
}

func load(ctx context.Context, rdb redis.UniversalClient, scripts ...*redis.Script) error {
	for _, s := range scripts {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}
