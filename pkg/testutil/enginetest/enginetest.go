// Package enginetest runs a real engine in-process against the test
// package's redis-server (see redistest), or the Redis Cluster its config
// names (redis.cluster, see clustertest), and writes campaign fixtures.
package enginetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/route"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
)

// Config returns an engine config for tests: keys under prefix, every
// domain routed to addr, fast throttle defaults. To route by MX instead,
// clear Routes and set DNS.Resolver (a dnstest server) and Delivery.Port.
func Config(prefix, addr string) *config.Config {
	cfg := config.Default()
	cfg.Hostname = "mta.sluice.test"
	cfg.Redis.Prefix = prefix
	cfg.Routes = route.Table{{Match: "*", Host: addr}}
	cfg.Delivery.Workers = 16
	cfg.Delivery.Consumer = "test"
	cfg.Throttle.Default.StartRate = 1e6
	cfg.Throttle.Default.MaxRate = 1e6
	cfg.Throttle.Default.Burst = 1000
	cfg.Throttle.Default.MaxConnections = 32
	return cfg
}

// Start runs an engine with cfg until the test ends.
func Start(tb testing.TB, cfg *config.Config) {
	tb.Helper()
	StartStoppable(tb, cfg)
}

// StartStoppable runs an engine with cfg until stop is called or the
// test ends (stop may be called more than once): a restart is a stop and
// a new engine with the same cfg.
func StartStoppable(tb testing.TB, cfg *config.Config) (stop func()) {
	tb.Helper()
	return StartWith(tb, cfg, nil)
}

// StartWith is StartStoppable with tune given the engine's dependencies
// before the engine is built (a test's clocks, say).
func StartWith(tb testing.TB, cfg *config.Config, tune func(*engine.Deps)) (stop func()) {
	tb.Helper()
	var rdb redis.UniversalClient
	switch {
	case len(cfg.Redis.Cluster) > 0:
		rdb = redis.NewClusterClient(cfg.Redis.ClusterOptions())
	case cfg.Redis.URL != "": // a server of the test's own
		o, err := cfg.Redis.Options()
		if err != nil {
			tb.Fatal(err)
		}
		o.PoolSize = cfg.Delivery.Workers + 16
		rdb = redis.NewClient(o)
	default:
		rdb = redis.NewClient(&redis.Options{Addr: redistest.Addr(), PoolSize: cfg.Delivery.Workers + 16})
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var resolver mx.Resolver
	if cfg.DNS.Resolver != "" {
		r, err := mx.NewDNS(mx.DNSConfig{Server: cfg.DNS.Resolver, Timeout: cfg.DNS.Timeout})
		if err != nil {
			tb.Fatal(err)
		}
		resolver = r
	}
	sender := deliver.NewSMTP(deliver.SMTPConfig{Hostname: cfg.Hostname, Resolver: resolver,
		MaxMessagesPerConn: cfg.Throttle.Default.MaxMessagesPerConnection, MaxIdlePerHost: cfg.Throttle.MaxConnections()})
	// Each engine has its own throttle; engines share only Redis.
	thr, err := throttle.FromConfig(cfg, rdb, log)
	if err != nil {
		tb.Fatal(err)
	}
	deps := engine.Deps{
		Config: cfg, Redis: rdb, Sender: sender, Throttle: thr,
		Router: &deliver.Router{Routes: cfg.Routes, Resolver: resolver, Port: cfg.Delivery.Port},
		Log:    log,
	}
	deps.Suppression = suppression.New(rdb, keyspace.Space(cfg.Redis.Prefix))
	if cfg.Unsubscribe.Secret != "" {
		us, err := unsubscribe.NewSigner([]byte(cfg.Unsubscribe.Secret))
		if err != nil {
			tb.Fatal(err)
		}
		deps.Unsubscribe = us
	}
	if len(cfg.DKIM) > 0 {
		signer, err := dkim.NewSigner(cfg.DKIM)
		if err != nil {
			tb.Fatal(err)
		}
		deps.Signer = signer
	}
	if tune != nil {
		tune(&deps)
	}
	eng := engine.New(deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			eng.Abandon()
			<-done
			sender.Close()
			thr.Close()
			_ = rdb.Close()
		})
	}
	tb.Cleanup(stop)
	return stop
}

// Campaign writes a campaign file with n recipients user%05d@<domain>
// (columns email, first_name, city) into dir and returns its path.
func Campaign(tb testing.TB, dir, id string, n int, domain string) string {
	tb.Helper()
	var list strings.Builder
	list.WriteString("email,first_name,city\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&list, "user%05d@%s,Name%05d,Zürich\n", i, domain, i)
	}
	Write(tb, filepath.Join(dir, id+".csv"), list.String())
	return Write(tb, filepath.Join(dir, id+".yaml"), fmt.Sprintf(`id: %s
from: '"Sluice News" <news@sluice.test>'
subject: 'Grüezi {{.first_name}}'
text: |
  Hello {{.first_name}} from {{.city}}!
  This is the text part of a campaign message, long enough to be realistic.
html: '<p>Hello <b>{{.first_name}}</b> from {{.city}}!</p><p>This is the HTML part.</p>'
recipients: %s.csv
`, id, id))
}

// Write writes a file or fails the test.
func Write(tb testing.TB, path, content string) string {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// DKIMKey writes a fresh RSA-2048 key for domain (selector "s1") into dir
// and returns its config entry and the DNS TXT record to publish.
func DKIMKey(tb testing.TB, dir, domain string) (config.DKIM, string) {
	tb.Helper()
	pemKey, txt, err := dkim.GenerateRSA(2048)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, domain+".pem")
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		tb.Fatal(err)
	}
	return config.DKIM{Domain: domain, Selector: "s1", KeyFile: path}, txt
}

// WaitFinished polls the campaign's status until it is finished and
// returns it, failing the test after within.
func WaitFinished(tb testing.TB, st *store.Store, id string, within time.Duration) store.Status {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := st.Status(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if s.State == store.StateFinished {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("campaign %s not finished after %v: %+v", id, within, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
