// Command engine delivers sluice's queued mail: it consumes the
// transactional and marketing streams in Redis and sends each job over SMTP.
//
//	engine -config engine.yaml
//
// Without a Redis URL (config redis.url or REDIS_URL) it runs an embedded,
// in-memory Redis for demos; nothing survives a restart then.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

func run() error {
	cfgPath := flag.String("config", "", "engine configuration file (YAML); empty uses defaults")
	verbose := flag.Bool("v", false, "log every delivery (debug level)")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	} else if v := os.Getenv("REDIS_URL"); v != "" {
		cfg.Redis.URL = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.Redis.Embedded() {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr(config.EmbeddedAddr); err != nil {
			return fmt.Errorf("start embedded redis on %s: %w", config.EmbeddedAddr, err)
		}
		defer mr.Close()
		log.Warn("NO REDIS CONFIGURED: running an embedded in-memory Redis on " + config.EmbeddedAddr +
			"; every queued job and counter is LOST when this engine stops. Set redis.url or REDIS_URL for real use.")
	}
	opts, err := cfg.Redis.Options()
	if err != nil {
		return err
	}
	opts.PoolSize = cfg.Delivery.Workers + 16
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", opts.Addr, err)
	}

	resolver, err := mx.NewDNS(mx.DNSConfig{Server: cfg.DNS.Resolver, Timeout: cfg.DNS.Timeout})
	if err != nil {
		return err
	}
	sender := deliver.NewSMTP(deliver.SMTPConfig{
		Hostname: cfg.Hostname, Resolver: resolver,
		ConnectTimeout: cfg.Delivery.ConnectTimeout, CommandTimeout: cfg.Delivery.CommandTimeout,
		DataTimeout: cfg.Delivery.DataTimeout, IdleTimeout: cfg.Delivery.IdleTimeout,
		MaxMessagesPerConn: cfg.Throttle.Default.MaxMessagesPerConnection,
		MaxIdlePerHost:     cfg.Throttle.MaxConnections(),
	})
	defer sender.Close()

	signer, err := dkim.NewSigner(cfg.DKIM)
	if err != nil {
		return err
	}
	deps := engine.Deps{
		Config: cfg, Redis: rdb, Log: log, Sender: sender,
		Router: &deliver.Router{Routes: cfg.Routes, Resolver: resolver, Port: cfg.Delivery.Port},
	}
	if len(cfg.DKIM) > 0 {
		deps.Signer = signer
	}
	supp := suppression.New(rdb, keyspace.Space(cfg.Redis.Prefix))
	deps.Suppression = supp
	eng := engine.New(deps)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	if cfg.Unsubscribe.BaseURL != "" && cfg.Unsubscribe.Secret != "" {
		us, err := unsubscribe.NewSigner([]byte(cfg.Unsubscribe.Secret))
		if err != nil {
			return fmt.Errorf("unsubscribe.secret: %w", err)
		}
		eng.Unsubscribe = us
		mux.Handle("/u/", unsubscribe.Handler(us, supp, log))
	} else {
		log.Warn("unsubscribe.base_url/secret not set: marketing mail goes out without RFC 8058 one-click List-Unsubscribe; Gmail and Yahoo require it from bulk senders")
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Addr: cfg.HTTP.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http listener", "addr", cfg.HTTP.Listen, "err", err)
			stop()
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	log.Info("engine started", "consumer", cfg.Delivery.Consumer, "redis", opts.Addr, "http", cfg.HTTP.Listen,
		"workers", cfg.Delivery.Workers, "routes", len(cfg.Routes))
	err = eng.Run(ctx)
	log.Info("engine stopped")
	return err
}
