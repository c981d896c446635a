package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/cmd/campaignctl/internal/send"
)

// cmdSend is `campaignctl send`, implemented by package internal/send.
func cmdSend(ctx context.Context, e *env, args []string) error {
	if wantsHelp(args) {
		return send.Run(ctx, nil, "", args, e.stdout, e.stderr)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	err = send.Run(ctx, rdb, ks, args, e.stdout, e.stderr)
	if errors.Is(err, send.ErrUsage) {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(err.Error(), ": usage"), errUsage)
	}
	return err
}
