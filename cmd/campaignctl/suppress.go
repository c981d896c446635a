package main

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// suppressedFunc checks the suppression list for a launch.
func suppressedFunc(rdb redis.UniversalClient, ks keyspace.Space) func(ctx context.Context, lane string, addrs []string) ([]bool, error) {
	return nil
}
