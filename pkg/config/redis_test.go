package config

import (
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisClusterSeeds(t *testing.T) {
	c, err := Parse("e.yaml", []byte("redis:\n  cluster: [10.0.0.1:7000, \"10.0.0.2:7001\"]\n  password: pw\n  tls: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7000", "10.0.0.2:7001"}; !slices.Equal(c.Redis.Cluster, want) {
		t.Fatalf("cluster = %q, want %q", c.Redis.Cluster, want)
	}
	if c.Redis.Embedded() || c.Redis.Where() != "cluster 10.0.0.1:7000,10.0.0.2:7001" {
		t.Errorf("embedded %v, where %q", c.Redis.Embedded(), c.Redis.Where())
	}
	rdb, err := c.Redis.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client is %T, want *redis.ClusterClient", rdb)
	}
	o := cc.Options()
	if !slices.Equal(o.Addrs, c.Redis.Cluster) || o.Password != "pw" || o.TLSConfig == nil || o.MaxRedirects != maxRedirects {
		t.Errorf("cluster options: addrs %q password %q tls %v redirects %d", o.Addrs, o.Password, o.TLSConfig != nil, o.MaxRedirects)
	}
	if want := c.Delivery.Workers + poolSpare; o.PoolSize != want {
		t.Errorf("pool size %d, want %d (per node)", o.PoolSize, want)
	}
}

// One server (url, or the embedded one) stays a *redis.Client, as before.
func TestRedisURLAndEmbeddedAreOneServer(t *testing.T) {
	for doc, addr := range map[string]string{
		"redis: {url: \"redis://:secret@127.0.0.1:6399/2\"}\n": "127.0.0.1:6399",
		"": EmbeddedAddr,
	} {
		c, err := Parse("e.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		rdb, err := c.Redis.Client()
		if err != nil {
			t.Fatal(err)
		}
		cl, ok := rdb.(*redis.Client)
		if !ok {
			t.Fatalf("%q: client is %T, want *redis.Client", doc, rdb)
		}
		if o := cl.Options(); o.Addr != addr || c.Redis.Where() != addr {
			t.Errorf("%q: addr %q, where %q, want %q", doc, o.Addr, c.Redis.Where(), addr)
		}
		_ = rdb.Close()
	}
}

// username, password and tls fill in what a URL leaves out, never what
// it says.
func TestRedisURLCredentials(t *testing.T) {
	o, err := Redis{URL: "redis://127.0.0.1:6399", Username: "u", Password: "p", TLS: true}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Username != "u" || o.Password != "p" || o.TLSConfig == nil || o.TLSConfig.ServerName != "127.0.0.1" {
		t.Errorf("filled in: %q %q %+v", o.Username, o.Password, o.TLSConfig)
	}
	o, err = Redis{URL: "redis://a:b@127.0.0.1:6399", Username: "u", Password: "p"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Username != "a" || o.Password != "b" {
		t.Errorf("url's own credentials replaced: %q %q", o.Username, o.Password)
	}
}

func TestRedisEnvChoosesTheRedis(t *testing.T) {
	t.Setenv("REDIS_CLUSTER", " 127.0.0.1:7000, 127.0.0.1:7001,,")
	c, err := Parse("e.yaml", []byte("redis: {url: redis://x:1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.URL != "" || !slices.Equal(c.Redis.Cluster, []string{"127.0.0.1:7000", "127.0.0.1:7001"}) {
		t.Fatalf("REDIS_CLUSTER over url: url %q cluster %q", c.Redis.URL, c.Redis.Cluster)
	}

	t.Setenv("REDIS_CLUSTER", "")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:7777")
	t.Setenv("REDIS_PASSWORD", "from-env")
	c, err = Parse("e.yaml", []byte("redis: {cluster: [h:1], password: file}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.URL != "redis://127.0.0.1:7777" || c.Redis.Cluster != nil || c.Redis.Password != "from-env" {
		t.Fatalf("REDIS_URL over cluster: %+v", c.Redis)
	}

	t.Setenv("REDIS_CLUSTER", "h:1")
	_, err = Parse("e.yaml", []byte(""))
	if want := "REDIS_URL and REDIS_CLUSTER are both set in the environment: unset one"; err == nil || err.Error() != want {
		t.Fatalf("both in the environment: %v, want %q", err, want)
	}
}

func TestRedisErrorsNameTheLine(t *testing.T) {
	for doc, want := range map[string]string{
		"hostname: a\nredis:\n  url: redis://h:1\n  cluster: [h:2, h:3]\n": "e.yaml:4: redis.cluster: redis.url is set too: give url for one Redis server or cluster for the seed nodes of a Redis Cluster, not both",
		"redis:\n  cluster:\n    - h:2\n    - nohostport\n":                `e.yaml:4: redis.cluster[1]: "nohostport" is not host:port`,
		"redis:\n  cluster: [\"h:99999\"]\n":                               `e.yaml:2: redis.cluster[0]: "h:99999" is not host:port`,
		"redis:\n  cluster: h:1\n":                                         `e.yaml:2: redis.cluster: want a list, got a scalar`,
		"redis:\n  url: http://h:1\n":                                      `e.yaml:2: redis.url: "http://h:1": redis: invalid URL scheme: http`,
		"redis: {pool_size: -1}\n":                                         `e.yaml:1: redis.pool_size: -1 must not be negative`,
		"redis:\n  wait_replicas: -1\n":                                    `e.yaml:2: redis.wait_replicas: -1 must not be negative`,
	} {
		if _, err := Parse("e.yaml", []byte(doc)); err == nil || err.Error() != want {
			t.Errorf("%q:\n got: %v\nwant: %s", doc, err, want)
		}
	}
}

// wait_replicas is off by default; wait_timeout defaults to a second.
func TestRedisWaitReplicas(t *testing.T) {
	c, err := Parse("e.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.WaitReplicas != 0 || c.Redis.WaitTimeout != time.Second {
		t.Errorf("defaults: wait_replicas %d, wait_timeout %v", c.Redis.WaitReplicas, c.Redis.WaitTimeout)
	}
	c, err = Parse("e.yaml", []byte("redis: {wait_replicas: 1, wait_timeout: 250ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.WaitReplicas != 1 || c.Redis.WaitTimeout != 250*time.Millisecond {
		t.Errorf("wait_replicas %d, wait_timeout %v", c.Redis.WaitReplicas, c.Redis.WaitTimeout)
	}
}
