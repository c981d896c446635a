// Package config reads the engine's one YAML configuration file. Every
// capability adds a section here rather than a file format of its own.
// Unknown keys are an error, reported with file and line.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/route"
)

// Config is the engine configuration.
type Config struct {
	// Hostname is the EHLO name. (Message-IDs are on the From domain.)
	Hostname string `yaml:"hostname"`
	Log      Log    `yaml:"log"`
	Redis    Redis  `yaml:"redis"` // see redis.go
	HTTP     HTTP   `yaml:"http"`
	// Routes is the transport map: a matching recipient domain is sent to
	// a fixed host instead of its MX.
	Routes      route.Table `yaml:"routes"`
	DNS         DNS         `yaml:"dns"`
	Delivery    Delivery    `yaml:"delivery"`
	Throttle    Throttle    `yaml:"throttle"`
	DKIM        []DKIM      `yaml:"dkim"`
	Submission  Submission  `yaml:"submission"`
	Unsubscribe Unsubscribe `yaml:"unsubscribe"`
	Lanes       Lanes       `yaml:"lanes"`
	Suppression Suppression `yaml:"suppression"`
	Inbound     Inbound     `yaml:"inbound"`    // see feedback.go
	Guardrails  Guardrails  `yaml:"guardrails"` // see feedback.go
	// Sources are the local addresses mail leaves from, Pools the sets of
	// them a lane or campaign sends through (see egress.go). None: one
	// implicit source "default" on the default route, in pool "default".
	Sources []Source `yaml:"sources"`
	Pools   []Pool   `yaml:"pools"`
	Events  Events   `yaml:"events"` // see events.go
}

// Suppression configures automatic suppression beyond hard bounces.
type Suppression struct {
	// A mailbox that is full (4.2.2) on SoftBounceCount attempts spread
	// over at least SoftBounceSpan is suppressed as soft_bounce_limit.
	SoftBounceCount int           `yaml:"soft_bounce_count"`
	SoftBounceSpan  time.Duration `yaml:"soft_bounce_span"`
}

// HTTP is the engine's listener for metrics, the API and unsubscribes.
type HTTP struct {
	Listen string `yaml:"listen"`
	// APITokens may use the HTTP API (Authorization: Bearer TOKEN).
	APITokens []APIToken `yaml:"api_tokens"`
	// UIToken is the SHA-256 (hex) of the token that opens the dashboard
	// at "/" (API tokens open it too); see dashboard.go.
	UIToken string `yaml:"ui_token"`
}

// APIToken is one API client. The token itself is not stored, only its
// SHA-256 (hex), so the config file does not hold a usable secret.
type APIToken struct {
	Name    string   `yaml:"name"`
	SHA256  string   `yaml:"sha256"`
	Domains []string `yaml:"domains"` // From domains it may send as; empty: any
}

// DNS configures MX resolution.
type DNS struct {
	Resolver string        `yaml:"resolver"` // "ip:port"; empty reads /etc/resolv.conf
	Timeout  time.Duration `yaml:"timeout"`
}

// Delivery configures outbound SMTP.
type Delivery struct {
	Port           int           `yaml:"port"` // destination port of MX hosts (25)
	Workers        int           `yaml:"workers"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	DataTimeout    time.Duration `yaml:"data_timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	// ReclaimIdle is how long an engine must have shown no sign of life
	// (its heartbeat in Redis) before another engine takes over its jobs.
	// It must be at least the longest legal delivery attempt
	// (LongestAttempt), so an attempt of a frozen engine is over before
	// its job is tried again; Validate refuses less. Default 20m.
	ReclaimIdle time.Duration `yaml:"reclaim_idle"`
	// DrainTimeout is how long an engine told to stop (SIGTERM) lets
	// attempts in flight finish; what is still running then is abandoned
	// to its pending list and taken up again at the next start (or by
	// another engine after ReclaimIdle). Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Consumer names this engine in the streams' consumer groups; it must
	// be stable across restarts so an engine takes back its own pending
	// jobs. Default: the hostname.
	Consumer string `yaml:"consumer"`
}

// Limits are one provider's throttle settings.
type Limits struct {
	StartRate                float64 `yaml:"start_rate"` // messages per second
	MinRate                  float64 `yaml:"min_rate"`
	MaxRate                  float64 `yaml:"max_rate"`
	Burst                    int     `yaml:"burst"`
	MaxConnections           int     `yaml:"max_connections"`
	MaxMessagesPerConnection int     `yaml:"max_messages_per_connection"`
	// StartConnections is the concurrency a destination starts at
	// (default max_connections); MinConnections is the floor adaptation
	// never goes below (default 1).
	StartConnections int `yaml:"start_connections"`
	MinConnections   int `yaml:"min_connections"`
	// RequireTLS never sends to this provider without STARTTLS (as
	// routes[].require_tls does for a route).
	RequireTLS bool `yaml:"require_tls"`
}

// Throttle holds the default limits and per-provider overrides.
type Throttle struct {
	Default   Limits            `yaml:"default"`
	Providers map[string]Limits `yaml:"providers"`
	// ProvidersFile overrides the shipped provider definitions.
	ProvidersFile string `yaml:"providers_file"`
	// Rules are response rules added to those of the providers file.
	Rules []Rule `yaml:"rules"`
	// OneStatePerProvider keeps one throttle state per destination key
	// for every source, as before egress sources: an IP-scoped deferral
	// then slows the whole pool. Off (the default), each source with an
	// address of its own has its own state per key.
	OneStatePerProvider bool `yaml:"one_state_per_provider"`
}

// Rule is a response rule: a reply matching Match, Threshold times within
// its window, puts the provider into Action for Duration.
type Rule struct {
	Name string `yaml:"name"`
	// Providers limits the rule to these provider names (or throttle
	// keys); empty applies it everywhere.
	Providers []string `yaml:"providers"`
	// Match is a case-insensitive regexp on "CODE ENHANCED TEXT".
	Match string `yaml:"match"`
	// Action is "suspend" (no delivery until it ends) or "cap" (rate and
	// concurrency ceilings below).
	Action   string        `yaml:"action"`
	Duration time.Duration `yaml:"duration"`
	// Threshold "N/WINDOW" fires on the Nth match within WINDOW, e.g.
	// "2/10m"; empty fires on every match.
	Threshold string `yaml:"threshold"`
	// Cap ceilings: absolute, or a fraction of the value when the rule
	// fires; the lower applies when both are set.
	Rate              float64 `yaml:"rate"`
	RateFactor        float64 `yaml:"rate_factor"`
	Connections       int     `yaml:"connections"`
	ConnectionsFactor float64 `yaml:"connections_factor"`
}

// DKIM is one signing key.
type DKIM struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	KeyFile  string `yaml:"key_file"`
}

// Submission is the SMTP submission listener for applications.
type Submission struct {
	Listen            string `yaml:"listen"`     // STARTTLS port, e.g. ":587"
	ListenTLS         string `yaml:"listen_tls"` // implicit TLS port, e.g. ":465"
	TLSCert           string `yaml:"tls_cert"`
	TLSKey            string `yaml:"tls_key"`
	AllowInsecureAuth bool   `yaml:"allow_insecure_auth"`
	Users             []User `yaml:"users"`
	// MaxConnectionsPerIP caps one client address's open sessions (an
	// IPv6 client's /64); more are answered 421 at the greeting and
	// closed. Default 20.
	MaxConnectionsPerIP int          `yaml:"max_connections_per_ip"`
	AuthFailures        AuthFailures `yaml:"auth_failures"`
}

// AuthFailures limits password guessing across connections. Counts are
// kept in memory by each engine process.
type AuthFailures struct {
	// PerIP failed AUTHs from one address (an IPv6 /64) within Window
	// refuse its further attempts, right password or not, until Window
	// has passed since its first failure. Default 5.
	PerIP int `yaml:"per_ip"`
	// PerUser failed AUTHs for one user name, from any addresses, within
	// Window refuse further attempts as that user from addresses it has
	// not logged in from before (so its own application keeps working)
	// until Window has passed since the first failure. Default 20.
	PerUser int           `yaml:"per_user"`
	Window  time.Duration `yaml:"window"` // default 15m
}

// WithDefaults fills the limits left at zero.
func (s Submission) WithDefaults() Submission {
	if s.MaxConnectionsPerIP == 0 {
		s.MaxConnectionsPerIP = 20
	}
	a := &s.AuthFailures
	if a.PerIP == 0 {
		a.PerIP = 5
	}
	if a.PerUser == 0 {
		a.PerUser = 20
	}
	if a.Window == 0 {
		a.Window = 15 * time.Minute
	}
	return s
}

// User may submit mail for Domains.
type User struct {
	Name            string   `yaml:"name"`
	PasswordHash    string   `yaml:"password_hash"` // bcrypt
	Domains         []string `yaml:"domains"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"` // 0: 25 MiB
	Rate            float64  `yaml:"rate"`              // messages per second; 0: unlimited
}

// Unsubscribe configures RFC 8058 one-click links.
type Unsubscribe struct {
	BaseURL string `yaml:"base_url"` // public URL of the HTTP listener, e.g. https://mail.example.com
	Secret  string `yaml:"secret"`   // HMAC key; env SLUICE_UNSUBSCRIBE_SECRET overrides
}

// Lanes holds the per-lane policies.
type Lanes struct {
	Transactional Lane `yaml:"transactional"`
	Marketing     Lane `yaml:"marketing"`
}

// Lane is one lane's retry policy and share of each provider's capacity.
type Lane struct {
	// Retry is the backoff schedule; the last step repeats.
	Retry []time.Duration `yaml:"retry"`
	// MaxAge bounces a job as expired when its first attempt is older.
	MaxAge time.Duration `yaml:"max_age"`
	// Share is the fraction of each provider's rate reserved for the lane.
	Share float64 `yaml:"share"`
	// Pool is the pool of sources the lane sends from (a campaign's pool:
	// overrides marketing's). Default: the only pool, when there is one.
	Pool string `yaml:"pool"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// Load reads and validates path, then applies environment overrides
// (REDIS_URL or REDIS_CLUSTER, SLUICE_UNSUBSCRIBE_SECRET).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes data (named name in errors), strictly: unknown keys and
// values of the wrong type are errors naming the file, the line and the
// key, and so are values Validate refuses.
func Parse(name string, data []byte) (*Config, error) {
	c, _, err := parse(name, data)
	return c, err
}

// parse is Parse, also returning the checker that knows every key's line.
func parse(name string, data []byte) (*Config, *checker, error) {
	c := &Config{}
	chk, err := decodeStrict(name, data, c)
	if err != nil {
		return nil, chk, err
	}
	if err := c.applyEnv(); err != nil {
		return nil, chk, err // the environment's, not the file's
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, chk, chk.at(chk.lineOf(fe.Path), err)
		}
		return nil, chk, chk.at(0, err)
	}
	return c, chk, nil
}

func (c *Config) applyEnv() error {
	if err := c.Redis.ApplyEnv(); err != nil {
		return err
	}
	if v := os.Getenv("SLUICE_UNSUBSCRIBE_SECRET"); v != "" {
		c.Unsubscribe.Secret = v
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.Redis.Prefix == "" {
		c.Redis.Prefix = "sluice"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8025"
	}
	if c.DNS.Timeout == 0 {
		c.DNS.Timeout = 5 * time.Second
	}
	d := &c.Delivery
	if d.Port == 0 {
		d.Port = 25
	}
	if d.Workers == 0 {
		d.Workers = 64
	}
	if d.ConnectTimeout == 0 {
		d.ConnectTimeout = 30 * time.Second
	}
	if d.CommandTimeout == 0 {
		d.CommandTimeout = 5 * time.Minute // RFC 5321 §4.5.3.2.2-6
	}
	if d.DataTimeout == 0 {
		d.DataTimeout = 10 * time.Minute // RFC 5321 §4.5.3.2.6
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = 30 * time.Second
	}
	if d.ReclaimIdle == 0 {
		d.ReclaimIdle = 20 * time.Minute // ≥ 30s + 5m + 10m, see Validate
	}
	if d.DrainTimeout == 0 {
		d.DrainTimeout = 30 * time.Second
	}
	if d.Consumer == "" {
		d.Consumer = c.Hostname
	}
	if c.Redis.PoolSize == 0 {
		c.Redis.PoolSize = d.Workers + poolSpare
	}
	if c.Redis.WaitTimeout == 0 {
		c.Redis.WaitTimeout = time.Second
	}
	t := &c.Throttle.Default
	if t.StartRate == 0 {
		t.StartRate = 100
	}
	if t.MinRate == 0 {
		t.MinRate = 1
	}
	if t.MaxRate == 0 {
		t.MaxRate = 1000
	}
	if t.Burst == 0 {
		t.Burst = 10
	}
	if t.MaxConnections == 0 {
		t.MaxConnections = 10
	}
	if t.MaxMessagesPerConnection == 0 {
		t.MaxMessagesPerConnection = 100
	}
	c.Submission = c.Submission.WithDefaults()
	if c.Suppression.SoftBounceCount == 0 {
		c.Suppression.SoftBounceCount = 5
	}
	if c.Suppression.SoftBounceSpan == 0 {
		c.Suppression.SoftBounceSpan = 72 * time.Hour
	}
	c.feedbackDefaults()
	c.egressDefaults()
	c.eventsDefaults()
	tx, mk := &c.Lanes.Transactional, &c.Lanes.Marketing
	if len(tx.Retry) == 0 {
		tx.Retry = []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute}
	}
	if tx.MaxAge == 0 {
		tx.MaxAge = 24 * time.Hour
	}
	if tx.Share == 0 {
		tx.Share = 0.2
	}
	if len(mk.Retry) == 0 {
		mk.Retry = []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute}
	}
	if mk.MaxAge == 0 {
		mk.MaxAge = 72 * time.Hour
	}
}

// FieldError is a value Validate refuses; Path names its key
// ("delivery.reclaim_idle", "submission.users[0]") and the message starts
// with it. Parse adds the key's line.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

func invalid(path, format string, a ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, a...)}
}

// LongestAttempt is the longest a delivery attempt may legally take:
// connect_timeout + command_timeout + data_timeout.
func (d Delivery) LongestAttempt() time.Duration {
	return d.ConnectTimeout + d.CommandTimeout + d.DataTimeout
}

// short writes d as the file would: 5m rather than 5m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Validate checks values that decoding cannot.
func (c *Config) Validate() error {
	if err := c.Routes.Validate(); err != nil {
		path, msg, ok := strings.Cut(err.Error(), ": ") // "routes[N]: ..."
		if !ok {
			path, msg = "routes", err.Error()
		}
		return &FieldError{Path: path, Msg: msg}
	}
	if err := c.Log.validate(); err != nil {
		return err
	}
	if err := c.Redis.Validate(); err != nil {
		return err
	}
	d := c.Delivery
	if d.Port < 1 || d.Port > 65535 {
		return invalid("delivery.port", "%d out of range", d.Port)
	}
	for _, v := range []struct {
		key string
		d   time.Duration
	}{{"connect_timeout", d.ConnectTimeout}, {"command_timeout", d.CommandTimeout}, {"data_timeout", d.DataTimeout},
		{"idle_timeout", d.IdleTimeout}, {"reclaim_idle", d.ReclaimIdle}, {"drain_timeout", d.DrainTimeout}} {
		if v.d < 0 {
			return invalid("delivery."+v.key, "%s must not be negative", short(v.d))
		}
	}
	// A job held longer than reclaim_idle is taken over by another engine;
	// if an attempt may legally last longer, a slow but live attempt is
	// sent a second time.
	if min := d.LongestAttempt(); d.ReclaimIdle < min {
		return invalid("delivery.reclaim_idle", "%s is shorter than the longest legal delivery attempt "+
			"(connect_timeout %s + command_timeout %s + data_timeout %s = %s): set it to at least %s or shorten the timeouts",
			short(d.ReclaimIdle), short(d.ConnectTimeout), short(d.CommandTimeout), short(d.DataTimeout), short(min), short(min))
	}
	if s := c.Lanes.Transactional.Share; s < 0 || s >= 1 {
		return invalid("lanes.transactional.share", "%v must be in [0,1)", s)
	}
	for i, t := range c.HTTP.APITokens {
		p := fmt.Sprintf("http.api_tokens[%d]", i)
		if t.Name == "" {
			return invalid(p, "name is required")
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return invalid(p+".sha256", "(%s) must be the 64 hex digits of the token's SHA-256 (printf %%s TOKEN | sha256sum)", t.Name)
		}
	}
	if err := c.Submission.validate(); err != nil {
		return err
	}
	if err := c.feedbackValidate(); err != nil {
		return err
	}
	if err := c.egressValidate(); err != nil {
		return err
	}
	if err := c.eventsValidate(); err != nil {
		return err
	}
	for i, d := range c.DKIM {
		if d.Domain == "" || d.Selector == "" || d.KeyFile == "" {
			return invalid(fmt.Sprintf("dkim[%d]", i), "domain, selector and key_file are required")
		}
	}
	return nil
}

func (s Submission) validate() error {
	if s.MaxConnectionsPerIP < 0 {
		return invalid("submission.max_connections_per_ip", "%d must not be negative", s.MaxConnectionsPerIP)
	}
	if a := s.AuthFailures; a.PerIP < 0 || a.PerUser < 0 || a.Window < 0 {
		return invalid("submission.auth_failures", "per_ip, per_user and window must not be negative")
	}
	for i, u := range s.Users {
		p := fmt.Sprintf("submission.users[%d]", i)
		if u.Name == "" || len(u.Domains) == 0 {
			return invalid(p, "name and domains are required")
		}
		if !strings.HasPrefix(u.PasswordHash, "$2a$") && !strings.HasPrefix(u.PasswordHash, "$2b$") && !strings.HasPrefix(u.PasswordHash, "$2y$") {
			return invalid(p+".password_hash", "(%s) must be a bcrypt hash ($2a$/$2b$/$2y$...)", u.Name)
		}
	}
	return nil
}

// MaxConnections is the largest per-destination connection limit
// configured: the SMTP pool keeps that many idle sessions per host, so a
// session freed by one permit is there for the next instead of being
// closed and reopened.
func (t Throttle) MaxConnections() int {
	n := t.Default.MaxConnections
	for _, p := range t.Providers {
		n = max(n, p.MaxConnections)
	}
	return n
}
