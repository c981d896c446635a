package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/cmd/campaignctl/internal/suppress"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/suppression"
)

// suppressedFunc checks a launch's recipients against the suppression
// list, one round trip per batch.
func suppressedFunc(rdb redis.UniversalClient, ks keyspace.Space) func(ctx context.Context, lane string, addrs []string) ([]bool, error) {
	l := suppression.New(rdb, ks)
	return func(ctx context.Context, lane string, addrs []string) ([]bool, error) {
		res, err := l.Check(ctx, lane, addrs)
		if err != nil {
			return nil, err
		}
		out := make([]bool, len(res))
		for i, e := range res {
			out[i] = e != nil
		}
		return out, nil
	}
}

func cmdSuppression(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return suppress.Run(ctx, nil, []string{"--help"}, e.stdout, e.stderr)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	err = suppress.Run(ctx, suppression.New(rdb, ks), args, e.stdout, e.stderr)
	switch {
	case errors.Is(err, suppress.ErrUsage):
		return fmt.Errorf("%s: %w", err.Error(), errUsage) // exit 2
	case errors.Is(err, suppress.ErrNotSuppressed):
		return errSilent // check, remove of an absent address: answered on stdout, exit 1
	}
	return err
}
