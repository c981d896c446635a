package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/cmd/campaignctl/internal/limits"
)

// cmdLimits is `campaignctl limits`, implemented by package internal/limits.
func cmdLimits(ctx context.Context, e *env, args []string) error {
	var err error
	if len(args) == 0 || wantsHelp(args) {
		err = limits.Run(ctx, nil, "", args, e.stdout, e.stderr) // help needs no Redis
	} else {
		rdb, ks, rerr := e.redis(ctx)
		if rerr != nil {
			return rerr
		}
		err = limits.Run(ctx, rdb, ks, args, e.stdout, e.stderr)
	}
	if errors.Is(err, limits.ErrUsage) {
		// limits has printed the usage; run adds the one-line reason.
		return fmt.Errorf("%s: %w", strings.TrimPrefix(err.Error(), "limits: "), errUsage)
	}
	return err
}
