package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
)

// The engine starts on a Redis Cluster named by redis.cluster and
// delivers through it.
func TestEngineOnACluster(t *testing.T) {
	c := clustertest.Start(t)
	sendThrough(t, fmt.Sprintf("{cluster: [%s], prefix: oncluster}", strings.Join(c.Addrs(), ", ")))
}

// redis.url naming a cluster node is refused at start, with what to set.
func TestEngineRefusesAClusterNodeAsURL(t *testing.T) {
	c := clustertest.Start(t)
	path := filepath.Join(t.TempDir(), "engine.yaml")
	if err := os.WriteFile(path, []byte("redis: {url: \"redis://"+c.Addrs()[0]+"\"}\nhttp: {listen: \""+freeAddr(t)+"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"-config", path}, &strings.Builder{}, nil)
	if !errors.Is(err, config.ErrClusterNode) || !strings.HasPrefix(err.Error(), "redis "+c.Addrs()[0]+": ") {
		t.Fatalf("err = %v, want %v", err, config.ErrClusterNode)
	}
}
