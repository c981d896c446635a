package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Redis locates the shared state: one server (URL) or a Redis Cluster
// (Cluster, its seed nodes), never both. With neither (and no REDIS_URL or
// REDIS_CLUSTER) the engine runs an embedded in-process Redis that keeps
// nothing across restarts.
type Redis struct {
	URL string `yaml:"url"`
	// Cluster are seed nodes (host:port) of a Redis Cluster: the client
	// learns the other nodes and the slot map from them, sends each
	// command to the master of its key's slot and follows failovers and
	// resharding by itself. A few seeds are enough; all are better.
	Cluster []string `yaml:"cluster"`
	// Username and Password authenticate (AUTH) to every cluster node,
	// and TLS encrypts the connections (each node's certificate checked
	// against its host name). With URL they fill in what it leaves out
	// (rediss:// and redis://user:pass@ say the same). REDIS_PASSWORD
	// overrides Password.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	TLS      bool   `yaml:"tls"`
	// PoolSize is the most connections an engine keeps to one server (to
	// each master of a cluster). Default: delivery.workers + 40, room for
	// every worker and every blocking reader on any one node.
	PoolSize int `yaml:"pool_size"`
	// WaitReplicas makes every settle, route, take and launch batch wait
	// until this many replicas of its master have it (WAIT), for up to
	// WaitTimeout (default 1s) each, before it counts as done; one not
	// replicated in time is done again (it changes nothing twice). Redis
	// replication is asynchronous: without it (0, the default) a failover
	// may lose the last writes its master acknowledged (see README, Redis
	// Cluster). A master with fewer replicas online is waited on for those
	// it has.
	WaitReplicas int           `yaml:"wait_replicas"`
	WaitTimeout  time.Duration `yaml:"wait_timeout"`
	// Prefix starts every key (keyspace.Space): the hash tags of one
	// deployment's keys. Two deployments side by side take two prefixes.
	Prefix string `yaml:"prefix"`
}

// EmbeddedAddr is where an engine without a Redis URL serves its embedded
// in-process Redis, and where campaignctl looks by default.
const EmbeddedAddr = "127.0.0.1:6390"

// poolSpare is the connections beyond one per worker: two blocking readers
// per shard (one per lane) and the engine's other loops.
const poolSpare = 16 + 2*keyspace.Shards

// maxRedirects bounds how often a cluster command follows MOVED or ASK, or
// is retried after a node failed, before its error reaches the caller. A
// resharding costs one or two; a failover a few retries (with backoff)
// against a slot map reloaded each time. What still fails then is a Redis
// outage to the engine, which retries by itself.
const maxRedirects = 8

// slotMapAge is how old the cluster client's slot map may grow before a
// command has it reloaded (in the background). go-redis reloads at once on
// MOVED, but not when a master is gone: a dead master's commands keep
// failing until the map is older than this (go-redis#3979; its default is
// 60 s). One CLUSTER SLOTS per client every 2 s is nothing.
const slotMapAge = 2 * time.Second

// Embedded reports whether no Redis was configured (the demo mode).
func (r Redis) Embedded() bool { return r.URL == "" && len(r.Cluster) == 0 }

// Where names the configured Redis for logs and errors: the server's
// host:port, or "cluster" and the seed nodes.
func (r Redis) Where() string {
	if len(r.Cluster) > 0 {
		return "cluster " + strings.Join(r.Cluster, ",")
	}
	if o, err := r.Options(); err == nil {
		return o.Addr
	}
	return r.URL
}

// ApplyEnv lets the environment choose the Redis: REDIS_URL (one server)
// or REDIS_CLUSTER (comma-separated seed nodes) replaces whichever of
// url and cluster the file set; both at once is an error. REDIS_PASSWORD
// replaces the password.
func (r *Redis) ApplyEnv() error {
	url, cluster := os.Getenv("REDIS_URL"), os.Getenv("REDIS_CLUSTER")
	switch {
	case url != "" && cluster != "":
		return errors.New("REDIS_URL and REDIS_CLUSTER are both set in the environment: unset one")
	case url != "":
		r.URL, r.Cluster = url, nil
	case cluster != "":
		r.URL, r.Cluster = "", SplitAddrs(cluster)
	}
	if v := os.Getenv("REDIS_PASSWORD"); v != "" {
		r.Password = v
	}
	return nil
}

// SplitAddrs splits a comma-separated list of host:port (REDIS_CLUSTER,
// campaignctl -redis-cluster), dropping spaces and empty items.
func SplitAddrs(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Validate checks what Parse checks of the section, for settings given
// otherwise (campaignctl's flags); a problem is a *FieldError.
func (r Redis) Validate() error {
	if r.URL != "" && len(r.Cluster) > 0 {
		return invalid("redis.cluster", "redis.url is set too: give url for one Redis server or cluster for the seed nodes of a Redis Cluster, not both")
	}
	for i, a := range r.Cluster {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return invalid(fmt.Sprintf("redis.cluster[%d]", i), "%q is not host:port", a)
		}
	}
	if r.URL != "" {
		if _, err := redis.ParseURL(r.URL); err != nil {
			return invalid("redis.url", "%q: %v", r.URL, err)
		}
	}
	if r.PoolSize < 0 {
		return invalid("redis.pool_size", "%d must not be negative", r.PoolSize)
	}
	if r.WaitReplicas < 0 {
		return invalid("redis.wait_replicas", "%d must not be negative", r.WaitReplicas)
	}
	if r.WaitTimeout < 0 {
		return invalid("redis.wait_timeout", "%s must not be negative", short(r.WaitTimeout))
	}
	return nil
}

// Client returns a client of the configured Redis, not yet connected: a
// *redis.ClusterClient for a cluster (each command routed to the master
// of its key's slot), else a *redis.Client of the URL or the embedded
// server.
func (r Redis) Client() (redis.UniversalClient, error) {
	if len(r.Cluster) > 0 {
		return redis.NewClusterClient(r.ClusterOptions()), nil
	}
	o, err := r.Options()
	if err != nil {
		return nil, err
	}
	return redis.NewClient(o), nil
}

// ErrClusterNode is Connect's answer when redis.url names a cluster node.
var ErrClusterNode = errors.New("a node of a Redis Cluster: name the cluster's nodes (redis.cluster, REDIS_CLUSTER or campaignctl -redis-cluster), not a URL")

// Connect returns a client of the configured Redis once it answers, and
// refuses a server that is not what the configuration says: redis.url
// naming a node of a Redis Cluster would be answered MOVED for most keys.
// (A cluster's seeds that are not cluster nodes fail the first command.)
func (r Redis) Connect(ctx context.Context) (redis.UniversalClient, error) {
	rdb, err := r.Client()
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	if len(r.Cluster) == 0 {
		info, err := rdb.Info(ctx, "cluster").Result()
		if err == nil && strings.Contains(info, "cluster_enabled:1") {
			_ = rdb.Close()
			return nil, ErrClusterNode
		}
	}
	return rdb, nil
}

// ClusterOptions are the go-redis options for the cluster of seed nodes
// r.Cluster. Reads go to masters too: a job just written must be seen.
func (r Redis) ClusterOptions() *redis.ClusterOptions {
	o := &redis.ClusterOptions{
		Addrs:        r.Cluster,
		Username:     r.Username,
		Password:     r.Password,
		PoolSize:     r.PoolSize,
		MaxRedirects: maxRedirects,

		ClusterStateReloadInterval: slotMapAge,
	}
	if r.TLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

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
	if o.Username == "" {
		o.Username = r.Username
	}
	if o.Password == "" {
		o.Password = r.Password
	}
	if r.TLS && o.TLSConfig == nil {
		host, _, _ := net.SplitHostPort(o.Addr)
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if r.PoolSize > 0 {
		o.PoolSize = r.PoolSize
	}
	return o, nil
}
