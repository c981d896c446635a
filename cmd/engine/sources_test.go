package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// Acceptance 4 of issue #13: a source whose address this host does not
// have fails the engine's start with an error naming the source and its
// address; nothing starts. The same configuration with addresses the host
// has (loopback) passes the check.
func TestStartFailsWhenASourceCannotBind(t *testing.T) {
	write := func(addr string) string {
		p := filepath.Join(t.TempDir(), "engine.yaml")
		cfg := fmt.Sprintf(`hostname: mta.sluice.test
redis: {url: %q, prefix: %q}
delivery: {consumer: srcbind}
http: {listen: %q}
sources:
  - {name: good, address: 127.0.0.2, ehlo: good.sluice.test}
  - {name: far-away, address: %s, ehlo: far.sluice.test}
`, redistest.URL(), redistest.Prefix(t), freeAddr(t), addr)
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"-config", write("192.0.2.1")}, &logs, nil)
	if err == nil || !strings.Contains(err.Error(), `source "far-away"`) || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Fatalf("run = %v, want an error naming source far-away and 192.0.2.1", err)
	}
	if strings.Contains(err.Error(), `"good"`) {
		t.Fatalf("run = %v names the good source too", err)
	}
	if strings.Contains(logs.String(), "engine started") {
		t.Fatalf("logged 'engine started' although a source cannot bind:\n%s", logs.String())
	}
	if err := checkSourcesOf(t, write("127.0.0.3")); err != nil {
		t.Fatalf("loopback sources: %v", err)
	}
}

func checkSourcesOf(t *testing.T, path string) error {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return checkSources(cfg)
}
