package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/inbound"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// guardEvery is how often the guardrails look at every sending campaign
// (bounces at SMTP time reach no report).
const guardEvery = 2 * time.Second

// startInbound binds the inbound listener (inbound.listen) and serves it
// until ctx ends, applying each report with a feedbackloop.Loop; it also
// runs the guardrails' watch. stop is called if the listener fails later.
// The returned func shuts the listener down. Without inbound.listen only
// the watch runs.
func startInbound(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, supp *suppression.List, log *slog.Logger, stop func()) (func(), error) {
	loop := feedbackloop.New(rdb, keyspace.Space(cfg.Redis.Prefix), supp, cfg.Guardrails,
		suppression.SoftLimit{Count: cfg.Suppression.SoftBounceCount, Span: cfg.Suppression.SoftBounceSpan}, log).
		WithWarmup(warmup.Plans(cfg))
	go loop.Watch(ctx, guardEvery)
	in := cfg.Inbound
	if in.Listen == "" {
		return func() {}, nil
	}
	srv, err := inbound.New(inbound.Config{
		Listen: in.Listen, Hostname: cfg.Hostname, ReturnPaths: in.ReturnPaths(), FBLAddresses: in.FBL,
		MaxMessageBytes: in.MaxMessageBytes, Rate: in.Rate, Burst: in.Burst,
	}, loop.Handle, log)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", in.Listen)
	if err != nil {
		return nil, fmt.Errorf("inbound.listen: %w", err)
	}
	log.Info("inbound listening", "addr", l.Addr().String(), "domains", in.Domains, "fbl", in.FBL)
	go func() {
		if err := srv.Serve(l); err != nil {
			log.Error("inbound listener", "addr", in.Listen, "err", err)
			stop()
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}
