package main

import (
	"bytes"
	"context"
	"errors"
	stdlog "log"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckShippedExample: the README's example configuration passes
// -check on a fresh checkout (every file it names ships or is commented).
func TestCheckShippedExample(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-check", "-config", "../../configs/engine.example.yaml"}, &out, nil)
	if err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("err=%v output:\n%s", err, out.String())
	}
}

// TestCheckReportsEveryProblem: a broken file fails with every problem,
// each naming the file and line, and starts nothing (no Redis here).
func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "engine.yaml")
	doc := `redis: {url: "redis://127.0.0.1:1/0"}
dkim:
  - domain: example.test
    selector: s1
    key_file: ` + filepath.Join(dir, "missing.pem") + `
throttle:
  providers_file: ` + filepath.Join(dir, "providers.yaml") + `
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-check", "-config", path}, &out, nil)
	if !errors.Is(err, errCheckFailed) {
		t.Fatalf("err = %v, want errCheckFailed; output:\n%s", err, out.String())
	}
	for _, want := range []string{path + ":5: dkim[0].key_file: open ", path + ":7: throttle.providers_file: open "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A parse error names its line too.
	if err := os.WriteFile(path, []byte("delivery:\n  consumr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"-check", "-config", path}, &out, nil); !errors.Is(err, errCheckFailed) {
		t.Fatalf("err = %v", err)
	}
	if want := path + `:2: unknown key "consumr" in delivery (did you mean "consumer"?)`; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// TestRedisRefusedIsOneClearError: an unreachable Redis is one plain
// error, and go-redis's own dial lines stay out of the log.
func TestRedisRefusedIsOneClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.yaml")
	addr := freeAddr(t) // nothing listens there
	if err := os.WriteFile(path, []byte("redis: {url: \"redis://"+addr+"/0\"}\nhttp: {listen: \""+freeAddr(t)+"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-config", path}, &out, nil)
	want := "redis " + addr + ": connection refused (is redis-server running? set redis.url or REDIS_URL, or redis.cluster or REDIS_CLUSTER)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if strings.Contains(out.String(), "dial tcp") {
		t.Errorf("go-redis lines in the log:\n%s", out.String())
	}
}

// TestLogFormatJSON: log.format json makes every engine line JSON.
func TestLogFormatJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.yaml")
	if err := os.WriteFile(path, []byte("log: {format: json, level: debug}\nredis: {url: \"redis://"+freeAddr(t)+"/0\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	afterLoad = func() { stdlog.Printf("from the log package") }
	defer func() { afterLoad = nil }()
	_ = run(context.Background(), []string{"-config", path}, &out, nil)
	if !strings.Contains(out.String(), `"msg":"from the log package"`) {
		t.Errorf("the log package does not write through the configured handler:\n%s", out.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			t.Errorf("not JSON: %s", l)
		}
	}
}
