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

// Unknown keys are reported at every level with file, line, where and a
// suggestion; so are values of the wrong type.
func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"hostname: a\ndelivery:\n  prot: 25\n",
			`engine.yaml:3: unknown key "prot" in delivery (did you mean "port"?)`},
		{"delivery:\n  port: 25\n  consumr: e1\n",
			`engine.yaml:3: unknown key "consumr" in delivery (did you mean "consumer"?)`},
		{"hostnme: a\n",
			`engine.yaml:1: unknown key "hostnme" (did you mean "hostname"?)`},
		{"frobnicate: 1\n",
			`engine.yaml:1: unknown key "frobnicate"`},
		{"routes:\n  - match: a.test\n    host: h:25\n  - match: b.test\n    hots: h:25\n",
			`engine.yaml:5: unknown key "hots" in routes[1] (did you mean "host"?)`},
		{"dkim:\n  - {domain: a.test, selector: s, keyfile: k.pem}\n",
			`engine.yaml:2: unknown key "keyfile" in dkim[0] (did you mean "key_file"?)`},
		{"submission:\n  users:\n    - name: app\n      password: x\n",
			`engine.yaml:4: unknown key "password" in submission.users[0]`},
		{"throttle:\n  providers:\n    google:\n      max_conections: 5\n",
			`engine.yaml:4: unknown key "max_conections" in throttle.providers.google (did you mean "max_connections"?)`},
		{"throttle:\n  rules:\n    - {name: r, action: suspend, duraton: 1h}\n",
			`engine.yaml:3: unknown key "duraton" in throttle.rules[0] (did you mean "duration"?)`},
		{"lanes:\n  marketing:\n    max_ag: 1h\n",
			`engine.yaml:3: unknown key "max_ag" in lanes.marketing (did you mean "max_age"?)`},
		{"suppression: {soft_bounce_cont: 3}\n",
			`engine.yaml:1: unknown key "soft_bounce_cont" in suppression (did you mean "soft_bounce_count"?)`},
		{"http:\n  api_tokens: [{name: a, sha: x}]\n",
			`engine.yaml:2: unknown key "sha" in http.api_tokens[0]`},
		{"redis: {url: x}\nredis: {prefix: y}\n",
			`engine.yaml:2: duplicate key "redis" (first at line 1)`},
		// type errors
		{"hostname: a\n\n\n\n\ndelivery:\n  connect_timeout: 2 seconds\n",
			`engine.yaml:7: delivery.connect_timeout: "2 seconds" is not a duration (use e.g. 30s, 5m, 1h)`},
		{"delivery: {data_timeout: 30}\n",
			`engine.yaml:1: delivery.data_timeout: "30" is not a duration (use e.g. 30s, 5m, 1h)`},
		{"lanes:\n  transactional:\n    retry: [1m, soon]\n",
			`engine.yaml:3: lanes.transactional.retry[1]: "soon" is not a duration (use e.g. 30s, 5m, 1h)`},
		{"delivery:\n  port: twenty-five\n",
			`engine.yaml:2: delivery.port: "twenty-five" is not a whole number`},
		{"throttle: {default: {start_rate: fast}}\n",
			`engine.yaml:1: throttle.default.start_rate: "fast" is not a number`},
		{"routes: [{match: a.test, host: h:25, require_tls: maybe}]\n",
			`engine.yaml:1: routes[0].require_tls: "maybe" is not true or false`},
		{"routes: {match: a.test}\n",
			`engine.yaml:1: routes: want a list, got a mapping`},
		{"delivery: fast\n",
			`engine.yaml:1: delivery: want a mapping of keys, got a scalar`},
		{"hostname: [a, b]\n",
			`engine.yaml:1: hostname: want a string, got a list`},
		{"- a\n- b\n",
			`engine.yaml:1: want a mapping of configuration keys, got a list`},
		// syntax
		{"delivery:\n  port: 25\n consumer: x\n",
			`engine.yaml:2: did not find expected key`},
		// validation, at the key's line
		{"hostname: a\ndelivery:\n  port: 70000\n",
			`engine.yaml:3: delivery.port: 70000 out of range`},
		{"routes:\n  - {match: a.test, host: h:25}\n  - {match: b.test, host: nohostport}\n",
			`engine.yaml:3: routes[1]: host "nohostport" must be host:port: address nohostport: missing port in address`},
	} {
		_, err := Parse("engine.yaml", []byte(c.doc))
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%q)\n got: %v\nwant: %s", c.doc, err, c.want)
		}
	}
}

// Every problem in a file is reported, in line order.
func TestParseReportsEveryError(t *testing.T) {
	_, err := Parse("e.yaml", []byte("delivery:\n  workrs: 2\n  idle_timeout: 1 minute\nhostnam: x\n"))
	want := `e.yaml:2: unknown key "workrs" in delivery (did you mean "workers"?)` + "\n" +
		`e.yaml:3: delivery.idle_timeout: "1 minute" is not a duration (use e.g. 30s, 5m, 1h)` + "\n" +
		`e.yaml:4: unknown key "hostnam" (did you mean "hostname"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

// Anchors, aliases and merge keys are followed, and checked too.
func TestParseFollowsAliasesAndMerges(t *testing.T) {
	c, err := Parse("e.yaml", []byte(`
throttle:
  default: &base {max_connections: 4, burst: 5}
  providers:
    google: {<<: *base, max_connections: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Throttle.Providers["google"]; g.MaxConnections != 2 || g.Burst != 5 {
		t.Fatalf("google = %+v", g)
	}
	_, err = Parse("e.yaml", []byte("x: &bad {brust: 1}\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown key "x"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = Parse("e.yaml", []byte("throttle:\n  default: &b {brust: 1}\n  providers: {g: *b}\n"))
	if err == nil || !strings.Contains(err.Error(), `e.yaml:2: unknown key "brust" in throttle.default (did you mean "burst"?)`) {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "~\n"} {
		c, err := Parse("e.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if c.Delivery.ReclaimIdle != 20*time.Minute || c.Delivery.DrainTimeout != 30*time.Second {
			t.Fatalf("%q: delivery = %+v", doc, c.Delivery)
		}
	}
}

// reclaim_idle shorter than connect + command + data timeout is refused:
// another engine would take over a job still being sent.
func TestReclaimIdleMustCoverTheLongestAttempt(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	_, err := Parse("e.yaml", []byte("delivery:\n  port: 25\n  reclaim_idle: 15m\n"))
	want := "e.yaml:3: delivery.reclaim_idle: 15m is shorter than the longest legal delivery attempt " +
		"(connect_timeout 30s + command_timeout 5m + data_timeout 10m = 15m30s): set it to at least 15m30s or shorten the timeouts"
	if err == nil || err.Error() != want {
		t.Fatalf("got:  %v\nwant: %s", err, want)
	}
	// The default reclaim_idle with longer timeouts: the line of delivery.
	_, err = Parse("e.yaml", []byte("hostname: a\ndelivery: {data_timeout: 30m}\n"))
	want = "e.yaml:2: delivery.reclaim_idle: 20m is shorter than the longest legal delivery attempt " +
		"(connect_timeout 30s + command_timeout 5m + data_timeout 30m = 35m30s): set it to at least 35m30s or shorten the timeouts"
	if err == nil || err.Error() != want {
		t.Fatalf("got:  %v\nwant: %s", err, want)
	}
	// Shorter timeouts make a short reclaim_idle legal; equal is enough.
	c, err := Parse("e.yaml", []byte("delivery: {connect_timeout: 1s, command_timeout: 2s, data_timeout: 3s, reclaim_idle: 6s, drain_timeout: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.ReclaimIdle != 6*time.Second || c.Delivery.DrainTimeout != 2*time.Second || c.Delivery.LongestAttempt() != 6*time.Second {
		t.Fatalf("delivery = %+v", c.Delivery)
	}
	if _, err := Parse("e.yaml", []byte("delivery: {drain_timeout: -1s}\n")); err == nil ||
		err.Error() != "e.yaml:1: delivery.drain_timeout: -1s must not be negative" {
		t.Fatalf("negative drain_timeout: %v", err)
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

func TestSubmissionAbuseLimits(t *testing.T) {
	c, err := Parse("e.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	want := AuthFailures{PerIP: 5, PerUser: 20, Window: 15 * time.Minute}
	if c.Submission.MaxConnectionsPerIP != 20 || c.Submission.AuthFailures != want {
		t.Fatalf("defaults: %d %+v", c.Submission.MaxConnectionsPerIP, c.Submission.AuthFailures)
	}
	c, err = Parse("e.yaml", []byte("submission:\n  max_connections_per_ip: 3\n  auth_failures: {per_ip: 2, per_user: 9, window: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want = AuthFailures{PerIP: 2, PerUser: 9, Window: time.Minute}
	if c.Submission.MaxConnectionsPerIP != 3 || c.Submission.AuthFailures != want {
		t.Fatalf("set: %d %+v", c.Submission.MaxConnectionsPerIP, c.Submission.AuthFailures)
	}
	for doc, msg := range map[string]string{
		"submission:\n  auth_failures: {per_ip: 2, windw: 1m}\n": `e.yaml:2: unknown key "windw" in submission.auth_failures (did you mean "window"?)`,
		"submission:\n  max_connections_per_ip: -1\n":            `e.yaml:2: submission.max_connections_per_ip: -1 must not be negative`,
		"submission:\n  auth_failures: {window: -1m}\n":          `e.yaml:2: submission.auth_failures: per_ip, per_user and window must not be negative`,
	} {
		if _, err := Parse("e.yaml", []byte(doc)); err == nil || err.Error() != msg {
			t.Errorf("%q:\n got: %v\nwant: %s", doc, err, msg)
		}
	}
}
