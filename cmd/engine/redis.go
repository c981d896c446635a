package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
)

// redisLog routes go-redis's internal messages (a line per failed dial,
// pool events) to the engine's logger at debug level, so an unreachable
// Redis gives one clear error instead of a burst of raw lines first.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

func quietRedis(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

// redisError explains a failed first PING.
func redisError(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &refusedError{addr: addr, err: err}
	case errors.Is(err, config.ErrClusterNode):
		return fmt.Errorf("redis %s: %w", addr, err)
	}
	return fmt.Errorf("redis %s: %w (%s)", addr, err, setRedis)
}

const setRedis = "set redis.url or REDIS_URL, or redis.cluster or REDIS_CLUSTER"

// refusedError is a Redis nobody listens for; it unwraps to the dial
// error but says in plain words what to do.
type refusedError struct {
	addr string
	err  error
}

func (e *refusedError) Error() string {
	return "redis " + e.addr + ": connection refused (is redis-server running? " + setRedis + ")"
}

func (e *refusedError) Unwrap() error { return e.err }
