// Command engine delivers sluice's queued mail: it consumes the
// transactional and marketing streams in Redis and sends each job over SMTP.
//
//	engine -config engine.yaml
//
// Its Redis is one server (config redis.url or REDIS_URL) or a Redis
// Cluster (redis.cluster or REDIS_CLUSTER, the seed nodes). Without
// either it runs an embedded, in-memory Redis for demos; nothing survives
// a restart then.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/api"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dashboard"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/metrics"
	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
	"github.com/sluice-mta/sluice/pkg/webhook"
)

func main() {
	// The first SIGTERM (or SIGINT) drains: no new jobs, attempts in
	// flight finish and settle. A second one abandons the drain.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, drain := context.WithCancel(context.Background())
	abandon := make(chan struct{})
	go func() {
		<-sigs
		drain()
		<-sigs
		close(abandon)
	}()
	err := run(ctx, os.Args[1:], os.Stderr, abandon)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if errors.Is(err, errCheckFailed) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

// run is the engine until ctx ends (SIGINT/SIGTERM) or a listener fails;
// then it drains until done, delivery.drain_timeout or abandon.
func run(ctx context.Context, args []string, logOut io.Writer, abandon <-chan struct{}) error {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	fs.SetOutput(logOut)
	cfgPath := fs.String("config", "", "engine configuration file (YAML); empty uses defaults")
	verbose := fs.Bool("v", false, "log every delivery (debug level)")
	checkOnly := fs.Bool("check", false, "check the configuration and every file it names, print ok or each problem, and exit (0 or 2); starts nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *checkOnly {
		return check(*cfgPath, logOut)
	}

	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	} else if err := cfg.Redis.ApplyEnv(); err != nil {
		return err
	}
	log := cfg.Log.Logger(logOut, *verbose)
	// Packages that fall back to slog.Default() (and the standard log
	// package under it) write through the same handler, in one format.
	defer restoreDefaultLog(slog.Default(), stdlog.Writer(), stdlog.Flags())
	slog.SetDefault(log)
	quietRedis(log)
	if afterLoad != nil {
		afterLoad()
	}
	if err := checkSources(cfg); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})

	if cfg.Redis.Embedded() {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr(config.EmbeddedAddr); err != nil {
			return fmt.Errorf("start embedded redis on %s: %w", config.EmbeddedAddr, err)
		}
		defer mr.Close()
		log.Warn("NO REDIS CONFIGURED: running an embedded in-memory Redis on " + config.EmbeddedAddr +
			"; every queued job and counter is LOST when this engine stops. Set redis.url or redis.cluster (REDIS_URL, REDIS_CLUSTER) for real use.")
	}
	rdb, err := cfg.Redis.Connect(ctx)
	if err != nil {
		return redisError(cfg.Redis.Where(), err)
	}
	defer rdb.Close()

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
		Logger:             log,
	})
	defer sender.Close()

	signer, err := dkim.NewSigner(cfg.DKIM)
	if err != nil {
		return err
	}
	// Providers (shipped, or throttle.providers_file) and response rules;
	// the adaptive state is shared with the other engines through Redis.
	thr, err := throttle.FromConfig(cfg, rdb, log)
	if err != nil {
		return err
	}
	defer thr.Close()
	deps := engine.Deps{
		Config: cfg, Redis: rdb, Log: log, Sender: sender, Throttle: thr,
		Router: &deliver.Router{Routes: cfg.Routes, Resolver: resolver, Port: cfg.Delivery.Port},
	}
	if len(cfg.DKIM) > 0 {
		deps.Signer = signer
	}
	supp := suppression.New(rdb, keyspace.Space(cfg.Redis.Prefix))
	deps.Suppression = supp
	eng := engine.New(deps)

	ks := keyspace.Space(cfg.Redis.Prefix)
	q := streams.New(rdb, ks, cfg.Delivery.Consumer)
	mux, err := handlers(cfg, eng, q, rdb, supp, log)
	if err != nil {
		return err
	}
	dash := dashboard.New(rdb, ks, supp, cfg.HTTP.DashboardTokens(), log)
	go dash.Run(ctx)
	mux.Handle("/", dash.Handler())
	// Every listener is bound before the engine says it started: a port
	// in use is an error at start, not a log line later.
	hl, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http listener", "addr", cfg.HTTP.Listen, "err", err)
			stop()
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if cfg.Submission.Listen != "" || cfg.Submission.ListenTLS != "" {
		sub, err := submission.New(cfg.Submission, cfg.Hostname, q, ks, log)
		if err != nil {
			return err
		}
		if err := sub.Listen(); err != nil {
			return err
		}
		go func() {
			if err := sub.Run(ctx); err != nil {
				log.Error("submission listener", "err", err)
				stop()
			}
		}()
	}
	closeInbound, err := startInbound(ctx, cfg, rdb, supp, log, stop)
	if err != nil {
		return err
	}
	defer closeInbound()
	// Events out: the stream kept to events.retention, and each webhook
	// fed from its own cursor in its own goroutine (pkg/webhook).
	go events.New(rdb, ks).KeepTrimmed(ctx, cfg.Events.Retention, log)
	go webhook.Run(ctx, rdb, ks, cfg.Events.Webhooks, webhook.Options{Owner: cfg.Delivery.Consumer}, log)

	log.Info("engine started", "consumer", cfg.Delivery.Consumer, "redis", cfg.Redis.Where(), "http", hl.Addr().String(),
		"workers", cfg.Delivery.Workers, "routes", len(cfg.Routes), "dkim_keys", len(cfg.DKIM), "dkim_rsa", dkim.Backend())
	go func() {
		select {
		case <-abandon:
			eng.Abandon()
		case <-done:
		}
	}()
	err = eng.Run(ctx)
	close(done)
	log.Info("engine stopped")
	return err
}

// handlers builds the HTTP listener's handlers: metrics, health, the
// transactional API and one-click unsubscribe.
func handlers(cfg *config.Config, eng *engine.Engine, q *streams.Queue, rdb redis.UniversalClient, supp *suppression.List, log *slog.Logger) (*http.ServeMux, error) {
	ks := keyspace.Space(cfg.Redis.Prefix)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := eng.Healthy(r.Context()); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/v1/", metrics.HTTP(api.Handler(cfg.HTTP, q, rdb, ks, log)))
	if cfg.Unsubscribe.BaseURL == "" || cfg.Unsubscribe.Secret == "" {
		log.Warn("unsubscribe.base_url/secret not set: marketing mail goes out without RFC 8058 one-click List-Unsubscribe; Gmail and Yahoo require it from bulk senders")
		return mux, nil
	}
	us, err := unsubscribe.NewSigner([]byte(cfg.Unsubscribe.Secret))
	if err != nil {
		return nil, fmt.Errorf("unsubscribe.secret: %w", err)
	}
	eng.Unsubscribe = us
	mux.Handle("/u/", unsubscribe.HandlerWithEvents(us, supp, log, events.New(rdb, ks)))
	return mux, nil
}

// restoreDefaultLog undoes slog.SetDefault when run returns (tests run the
// engine several times in one process).
func restoreDefaultLog(l *slog.Logger, w io.Writer, flags int) {
	slog.SetDefault(l)
	stdlog.SetOutput(w)
	stdlog.SetFlags(flags)
}

// afterLoad, when set by a test, runs once the logger is in place.
var afterLoad func()
