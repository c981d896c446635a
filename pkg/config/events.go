package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Events configures the event stream (pkg/events) and the webhooks that
// receive it (pkg/webhook).
type Events struct {
	// Retention is how long events are kept in {prefix}:events (7 days).
	Retention time.Duration `yaml:"retention"`
	Webhooks  []Webhook     `yaml:"webhooks"`
}

// Webhook is one receiver of events: batches of them as JSON POSTs,
// signed with Secret (HMAC-SHA256), retried until RetryFor has passed.
type Webhook struct {
	// Name identifies the webhook's cursor in Redis (default: derived from
	// URL); changing it starts the webhook afresh, from new events.
	Name   string `yaml:"name"`
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
	// Types are the event types sent (empty: all).
	Types []string `yaml:"types"`
	// Batch is the most events in one POST (100).
	Batch int `yaml:"batch"`
	// Timeout bounds one POST (10s).
	Timeout time.Duration `yaml:"timeout"`
	// RetryFor is how long a batch is retried before it is given up (24h).
	RetryFor time.Duration `yaml:"retry_for"`
}

// eventTypes are pkg/events' types (config does not import it).
var eventTypes = []string{"queued", "delivered", "deferred", "bounced", "suppressed", "failed", "expired",
	"cancelled", "complained", "unsubscribed", "paused", "resumed"}

var webhookName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func (c *Config) eventsDefaults() {
	if c.Events.Retention == 0 {
		c.Events.Retention = 7 * 24 * time.Hour
	}
	for i := range c.Events.Webhooks {
		w := &c.Events.Webhooks[i]
		if w.Batch == 0 {
			w.Batch = 100
		}
		if w.Timeout == 0 {
			w.Timeout = 10 * time.Second
		}
		if w.RetryFor == 0 {
			w.RetryFor = 24 * time.Hour
		}
	}
}

func (c *Config) eventsValidate() error {
	if err := c.HTTP.dashboardValidate(); err != nil {
		return err
	}
	if c.Events.Retention < time.Minute {
		return invalid("events.retention", "%s is too short (at least 1m; default 7 days)", short(c.Events.Retention))
	}
	names := map[string]bool{}
	for i, w := range c.Events.Webhooks {
		path := fmt.Sprintf("events.webhooks[%d]", i)
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(path+".url", "%q is not an http(s) URL", w.URL)
		}
		if w.Secret == "" {
			return invalid(path+".secret", "is required: receivers check the signature with it")
		}
		if w.Name != "" && !webhookName.MatchString(w.Name) {
			return invalid(path+".name", "%q: use letters, digits, '.', '_' or '-' (at most 64)", w.Name)
		}
		key := w.Name + " " + w.URL
		if names[key] {
			return invalid(path, "repeats another webhook's url and name (they would share one cursor)")
		}
		names[key] = true
		for _, t := range w.Types {
			if !slices.Contains(eventTypes, t) {
				return invalid(path+".types", "%q is not an event type (want %v)", t, eventTypes)
			}
		}
		if w.Batch < 1 || w.Batch > 10000 {
			return invalid(path+".batch", "%d must be in 1..10000", w.Batch)
		}
		if w.Timeout < 0 || w.RetryFor < 0 {
			return invalid(path, "timeout and retry_for must not be negative")
		}
	}
	return nil
}
