package streams

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one run of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// runAll runs script once per call in one pipelined round trip (each run
// still atomic on its own, in its own keys' slot) and returns the replies
// in order. A server that does not know the script yet (NOSCRIPT: new, or
// restarted) gets the calls that failed so again with its text.
func runAll(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, calls []scriptCall) []*redis.Cmd {
	run := func(eval bool, at []int, out []*redis.Cmd) {
		pipe := rdb.Pipeline()
		for _, i := range at {
			if eval {
				out[i] = script.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
			} else {
				out[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
			}
		}
		_, _ = pipe.Exec(ctx)
	}
	out := make([]*redis.Cmd, len(calls))
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	run(false, all, out)
	var again []int
	for i, c := range out {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		run(true, again, out)
	}
	return out
}
