package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/pkg/sendcli"
)

// cmdSend is `campaignctl send`, implemented by package sendcli.
func cmdSend(ctx context.Context, e *env, args []string) error {
	if wantsHelp(args) {
		return sendcli.Run(ctx, nil, "", args, e.stdout, e.stderr)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	err = sendcli.Run(ctx, rdb, ks, args, e.stdout, e.stderr)
	if errors.Is(err, sendcli.ErrUsage) {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(err.Error(), ": usage"), errUsage)
	}
	return err
}
