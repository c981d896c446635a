package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseFullShape(t *testing.T) {
	c, err := Parse("engine.yaml", []byte(`
hostname: mta.sluice.test
redis: {url: "redis://127.0.0.1:6399", prefix: s1}
http: {listen: "127.0.0.1:9000"}
routes:
  - {match: "*.example.test", host: "127.0.0.1:2525"}
dns: {resolver: "127.0.0.1:5353"}
delivery: {port: 2526, command_timeout: 30s}
throttle:
  default: {start_rate: 50, min_rate: 1, max_rate: 500, burst: 5, max_connections: 4, max_messages_per_connection: 20}
  providers:
    google: {max_connections: 5}
dkim: [{domain: sluice.test, selector: s1, key_file: k.pem}]
submission: {listen: "127.0.0.1:587", users: [{name: app, password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", domains: [sluice.test]}]}
unsubscribe: {base_url: "https://u.sluice.test", secret: s}
lanes:
  transactional: {retry: [10s, 1m], max_age: 1h, share: 0.3}
  marketing: {retry: [5m], max_age: 48h}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.Port != 2526 || c.Delivery.CommandTimeout != 30*time.Second || c.Delivery.DataTimeout != 10*time.Minute {
		t.Errorf("delivery = %+v", c.Delivery)
	}
	if c.Lanes.Transactional.Retry[1] != time.Minute || c.Lanes.Transactional.Share != 0.3 {
		t.Errorf("lanes = %+v", c.Lanes)
	}
	if r, ok := c.Routes.Lookup("a.example.test"); !ok || r.Host != "127.0.0.1:2525" {
		t.Errorf("route = %+v %v", r, ok)
	}
	if c.Throttle.Providers["google"].MaxConnections != 5 || c.Redis.Prefix != "s1" {
		t.Errorf("throttle/redis = %+v %+v", c.Throttle, c.Redis)
	}
}

func TestParseRejectsUnknownKeyWithLine(t *testing.T) {
	_, err := Parse("engine.yaml", []byte("hostname: a\ndelivery:\n  prot: 25\n"))
	if err == nil || !strings.Contains(err.Error(), "engine.yaml") || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "prot") {
		t.Fatalf("err = %v; want file, line 3 and the key", err)
	}
}

func TestEnvOverridesRedisURL(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://127.0.0.1:7777")
	c, err := Parse("e.yaml", []byte("redis: {url: redis://x:1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.URL != "redis://127.0.0.1:7777" {
		t.Fatalf("url = %q", c.Redis.URL)
	}
}

func TestBadRouteRejected(t *testing.T) {
	if _, err := Parse("e.yaml", []byte("routes: [{match: a.test, host: nohostport}]\n")); err == nil {
		t.Fatal("want error for route without port")
	}
}

func TestShippedConfigsParse(t *testing.T) {
	for _, p := range []string{"../../configs/engine.example.yaml", "../../configs/demo.yaml"} {
		if _, err := Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestBadSecretsRejectedAtLoad(t *testing.T) {
	for name, doc := range map[string]string{
		"token hash":    "http: {api_tokens: [{name: app, sha256: nothex}]}\n",
		"password hash": "submission: {users: [{name: app, password_hash: plaintext, domains: [sluice.test]}]}\n",
		"no domains":    "submission: {users: [{name: app, password_hash: $2a$10$abcdefghijklmnopqrstuu}]}\n",
	} {
		if _, err := Parse("e.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
