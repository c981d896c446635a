package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEngineBinaryWiring runs the engine as main does, from a config file,
// and sends through its HTTP API: config → Redis → SMTP → GET shows 250.
func TestEngineBinaryWiring(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	httpAddr := freeAddr(t)
	sum := sha256.Sum256([]byte("s3cret-token"))
	cfgPath := filepath.Join(t.TempDir(), "engine.yaml")
	cfg := fmt.Sprintf(`hostname: mta.sluice.test
redis: {url: %q, prefix: %q}
http:
  listen: %q
  api_tokens: [{name: app, sha256: %s}]
routes: [{match: "*", host: %q}]
delivery: {consumer: wiring}
unsubscribe: {base_url: "http://%s", secret: "0123456789abcdef0123456789abcdef"}
`, redistest.URL(), redistest.Prefix(t), httpAddr, hex.EncodeToString(sum[:]), srv.Addr, httpAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", cfgPath}, &logs, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v\n%s", err, logs.String())
		}
	})

	base := "http://" + httpAddr
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("engine HTTP listener never came up: %v\n%s", err, logs.String())
	}
	req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(
		`{"from":"app@sluice.test","to":["ann@example.test"],"subject":"Your code","text":"1234"}`))
	req.Header.Set("Authorization", "Bearer s3cret-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		Messages []struct{ ID string } `json:"messages"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(accepted.Messages) != 1 {
		t.Fatalf("POST /v1/messages: %d %+v", resp.StatusCode, accepted)
	}
	id := accepted.Messages[0].ID
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/v1/messages/"+id, nil)
		req.Header.Set("Authorization", "Bearer s3cret-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			State string `json:"state"`
			Last  struct {
				Code int `json:"code"`
			} `json:"last"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.State == "delivered" && st.Last.Code == 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message state %+v\n%s", st, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if srv.Count() != 1 || !bytes.Contains(srv.Messages()[0].Data, []byte("Subject: Your code")) {
		t.Fatalf("receiver got %d messages", srv.Count())
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestStartFailsWhenAListenerCannotBind: a port in use is an error at
// start, returned (main prints it last and exits 1), and "engine started"
// is never logged.
func TestStartFailsWhenAListenerCannotBind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for name, section := range map[string]string{
		"http": fmt.Sprintf("http: {listen: %q}", taken.Addr()),
		"submission": fmt.Sprintf("http: {listen: %q}\nsubmission: {listen: %q, allow_insecure_auth: true, users: [{name: app, domains: [sluice.test], password_hash: %q}]}",
			freeAddr(t), taken.Addr(), bcryptHash(t, "pw")),
	} {
		t.Run(name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "engine.yaml")
			cfg := fmt.Sprintf("hostname: mta.sluice.test\nredis: {url: %q, prefix: %q}\ndelivery: {consumer: bind}\n%s\n",
				redistest.URL(), redistest.Prefix(t), section)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"-config", cfgPath}, &logs, nil)
			if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), taken.Addr().String()) {
				t.Fatalf("run = %v, want an address-in-use error naming %s", err, taken.Addr())
			}
			if strings.Contains(logs.String(), "engine started") {
				t.Fatalf("logged 'engine started' although a listener failed:\n%s", logs.String())
			}
		})
	}
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}
