package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/cmd/campaignctl/internal/limits"
	"github.com/sluice-mta/sluice/pkg/throttle"
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
		names, nerr := configProviders(e)
		if nerr != nil {
			return nerr
		}
		err = limits.RunNames(ctx, rdb, ks, names, args, e.stdout, e.stderr)
	}
	if errors.Is(err, limits.ErrUsage) {
		// limits has printed the usage; run adds the one-line reason.
		return fmt.Errorf("%s: %w", strings.TrimPrefix(err.Error(), "limits: "), errUsage)
	}
	return err
}

// configProviders names the providers the -config file defines: its
// providers file's and throttle.providers' (none without -config).
func configProviders(e *env) ([]string, error) {
	cfg, err := e.config()
	if err != nil || cfg == nil {
		return nil, err
	}
	var names []string
	for n := range cfg.Throttle.Providers {
		names = append(names, n)
	}
	if cfg.Throttle.ProvidersFile != "" {
		f, err := throttle.LoadFile(cfg.Throttle.ProvidersFile)
		if err != nil {
			return nil, err
		}
		for _, p := range f.Providers {
			names = append(names, p.Name)
		}
	}
	return names, nil
}
