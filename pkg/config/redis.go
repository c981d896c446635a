package config

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// EmbeddedAddr is where an engine without a Redis URL serves its embedded
// in-process Redis, and where campaignctl looks by default.
const EmbeddedAddr = "127.0.0.1:6390"

// Embedded reports whether no Redis was configured (the demo mode).
func (r Redis) Embedded() bool { return r.URL == "" }

// Options returns go-redis options for the configured URL, or for the
// embedded server when none is set.
func (r Redis) Options() (*redis.Options, error) {
	url := r.URL
	if url == "" {
		url = "redis://" + EmbeddedAddr
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis.url %q: %w", url, err)
	}
	return o, nil
}
