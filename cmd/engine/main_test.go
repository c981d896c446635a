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
	"sync"
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
	redisYAML := fmt.Sprintf("{url: %q, prefix: %q}", redistest.URL(), redistest.Prefix(t))
	sendThrough(t, redisYAML)
}

// sendThrough starts an engine with the redis section redisYAML, sends a
// message through its HTTP API and waits until the API says it was
// delivered, and the receiver has it.
func sendThrough(t *testing.T, redisYAML string) {
	srv := smtptest.Start(t, smtptest.Options{})
	httpAddr := freeAddr(t)
	sum := sha256.Sum256([]byte("s3cret-token"))
	cfgPath := filepath.Join(t.TempDir(), "engine.yaml")
	cfg := fmt.Sprintf(`hostname: mta.sluice.test
redis: %s
http:
  listen: %q
  api_tokens: [{name: app, sha256: %s}]
routes: [{match: "*", host: %q}]
delivery: {consumer: wiring}
unsubscribe: {base_url: "http://%s", secret: "0123456789abcdef0123456789abcdef"}
`, redisYAML, httpAddr, hex.EncodeToString(sum[:]), srv.Addr, httpAddr)
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
		"inbound": fmt.Sprintf("http: {listen: %q}\ninbound: {listen: %q, domains: [bounce.sluice.test]}", freeAddr(t), taken.Addr()),
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
			if name == "inbound" && !strings.Contains(err.Error(), "inbound.listen") {
				t.Fatalf("run = %v, want it to name inbound.listen", err)
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

// TestSIGTERMDrainsAttemptsInFlight: the first signal (ctx) lets an attempt
// in flight finish and settle before run returns; a second (abandon) cuts
// a drain short, leaving the job pending.
func TestSIGTERMDrainsAttemptsInFlight(t *testing.T) {
	for _, abandonIt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abandon=%v", abandonIt), func(t *testing.T) {
			arrived, release := make(chan struct{}, 1), make(chan struct{})
			srv := smtptest.Start(t, smtptest.Options{Quiet: true, Data: func(string, []string, []byte) error {
				arrived <- struct{}{}
				<-release
				return nil
			}})
			defer close(release)
			httpAddr := freeAddr(t)
			sum := sha256.Sum256([]byte("tok"))
			cfgPath := filepath.Join(t.TempDir(), "engine.yaml")
			cfg := fmt.Sprintf("hostname: mta.sluice.test\nredis: {url: %q, prefix: %q}\nhttp: {listen: %q, api_tokens: [{name: app, sha256: %s}]}\nroutes: [{match: \"*\", host: %q}]\ndelivery: {consumer: drain}\n",
				redistest.URL(), redistest.Prefix(t), httpAddr, hex.EncodeToString(sum[:]), srv.Addr)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			abandon := make(chan struct{})
			logs := &syncBuffer{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"-config", cfgPath}, logs, abandon) }()
			var resp *http.Response
			var err error
			for i := 0; i < 100; i++ {
				req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/messages", strings.NewReader(
					`{"from":"app@sluice.test","to":["ann@example.test"],"subject":"Drain","text":"x"}`))
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("Content-Type", "application/json")
				if resp, err = http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil || resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST: %v %v\n%s", resp, err, logs)
			}
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("the message never reached DATA\n%s", logs)
			}
			cancel() // the first SIGTERM
			select {
			case err := <-done:
				t.Fatalf("run returned (%v) while an attempt was in flight\n%s", err, logs)
			case <-time.After(500 * time.Millisecond):
			}
			if abandonIt {
				close(abandon) // the second SIGTERM
			} else {
				release <- struct{}{}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("run did not return after the drain\n%s", logs)
			}
			want := "drain finished"
			if abandonIt {
				want = "drain abandoned"
			}
			if !strings.Contains(logs.String(), "draining") || !strings.Contains(logs.String(), want) {
				t.Fatalf("logs lack the drain's start or %q:\n%s", want, logs)
			}
			if !abandonIt && srv.Count() != 1 {
				t.Fatalf("receiver has %d messages, want 1", srv.Count())
			}
		})
	}
}

// syncBuffer is a log sink safe to read while the engine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
