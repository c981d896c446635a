package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/redis/go-redis/v9"
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
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &refusedError{addr: addr, err: err}
	}
	return fmt.Errorf("redis %s: %w (set redis.url or REDIS_URL)", addr, err)
}

// refusedError is a Redis nobody listens for; it unwraps to the dial
// error but says in plain words what to do.
type refusedError struct {
	addr string
	err  error
}

func (e *refusedError) Error() string {
	return "redis " + e.addr + ": connection refused (is redis-server running? set redis.url or REDIS_URL)"
}

func (e *refusedError) Unwrap() error { return e.err }
