package submission

import (
	"bytes"
	"context"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

const body = "Subject: Your code\r\nFrom: App <app@sluice.test>\r\nTo: someone\r\n\r\nYour code is 123456.\r\n"

// The acceptance path: a client submits over STARTTLS with AUTH; the
// message is in Redis when the 250 arrives, with no engine running (a
// crash now loses nothing); an engine started afterwards delivers it.
func TestSubmissionIsDurableBefore250AndDelivered(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	c := e.dial(t, "app")
	rcpts := []string{"a@example.test", "b@Example.TEST", "A@EXAMPLE.test"}
	reply, err := send(c, "app@sluice.test", rcpts, body)
	if err != nil {
		t.Fatal(err)
	}
	jobs := ids(t, reply, 2)

	// Before any engine: each job, its record and its message are stored.
	if n, _, _ := e.q.Depth(ctx, streams.Transactional); n != 2 {
		t.Fatalf("stream holds %d jobs after 250, want 2", n)
	}
	for _, to := range []string{"a@example.test", "b@example.test"} {
		id := jobs[to]
		if rec := e.record(t, id); rec.Status != "queued" || rec.JobID != id {
			t.Fatalf("record of %s: %+v", id, rec)
		}
		stored, err := e.q.Message(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(stored, []byte("Received: from localhost ([127.0.0.1])\r\n\tby mta.sluice.test (sluice) with ESMTPSA;\r\n\t")) {
			t.Fatalf("stored message does not start with a Received header:\n%s", stored)
		}
		if !bytes.HasSuffix(stored, []byte(body)) {
			t.Fatalf("stored message lost the submitted one:\n%s", stored)
		}
	}

	// Then an engine, as after a restart.
	sink := smtptest.Start(t, smtptest.Options{})
	enginetest.Start(t, enginetest.Config(e.prefix, sink.Addr))
	waitFor(t, func() bool { return sink.Count() == 2 })
	for _, m := range sink.Messages() {
		if m.From != "app@sluice.test" || len(m.To) != 1 || jobs[m.To[0]] == "" {
			t.Fatalf("envelope %s -> %v", m.From, m.To)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		// RFC 6409 §8.2, §8.3: the submission service added what was missing.
		if msg.Header.Get("Date") == "" || !strings.HasSuffix(msg.Header.Get("Message-Id"), "@sluice.test>") {
			t.Fatalf("no Date or Message-ID added: %v", msg.Header)
		}
		if len(msg.Header["Received"]) != 1 || msg.Header.Get("Subject") != "Your code" {
			t.Fatalf("headers %v", msg.Header)
		}
	}
	waitFor(t, func() bool {
		for _, id := range jobs {
			if rec := e.record(t, id); rec.Status != "delivered" || rec.Code != 250 {
				return false
			}
		}
		return true
	})
}

// AUTH LOGIN works too, with the username as initial response (go-sasl's
// client) and without it (a raw exchange).
func TestAuthLogin(t *testing.T) {
	e := start(t, nil)
	c := e.dial(t, "")
	if err := c.Auth(sasl.NewLoginClient("app", password)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if _, err := send(c, "app@mail.sluice.test", []string{"a@example.test"}, body); err != nil {
		t.Fatal(err)
	}

	c2 := e.dial(t, "")
	if err := c2.Auth(challengeLogin{}); err != nil {
		t.Fatalf("AUTH LOGIN without initial response: %v", err)
	}
	c3 := e.dial(t, "")
	wantCode(t, "AUTH LOGIN wrong password", c3.Auth(sasl.NewLoginClient("app", "nope")), 535, smtp.EnhancedCode{5, 7, 8})
}

// challengeLogin answers the "Username:" and "Password:" challenges.
type challengeLogin struct{}

func (challengeLogin) Start() (string, []byte, error) { return "LOGIN", nil, nil }
func (challengeLogin) Next(ch []byte) ([]byte, error) {
	switch string(ch) {
	case "Username:":
		return []byte("app"), nil
	case "Password:":
		return []byte(password), nil
	}
	return nil, nil
}

// Every refusal gets its RFC code, and none of them queues anything.
func TestRefusalsQueueNothing(t *testing.T) {
	e := start(t, nil)

	t.Run("AUTH before STARTTLS", func(t *testing.T) {
		c, err := smtp.Dial(e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Fatal("AUTH advertised before STARTTLS")
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Fatal("STARTTLS not advertised")
		}
		wantCode(t, "AUTH in clear text", c.Auth(sasl.NewPlainClient("", "app", password)), 538, smtp.EnhancedCode{5, 7, 11})
		wantCode(t, "MAIL after refused AUTH", c.Mail("app@sluice.test", nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("wrong password", func(t *testing.T) {
		c := e.dial(t, "")
		wantCode(t, "AUTH", c.Auth(sasl.NewPlainClient("", "app", "wrong")), 535, smtp.EnhancedCode{5, 7, 8})
		wantCode(t, "MAIL", c.Mail("app@sluice.test", nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("unknown user", func(t *testing.T) {
		c := e.dial(t, "")
		wantCode(t, "AUTH", c.Auth(sasl.NewPlainClient("", "mallory", password)), 535, smtp.EnhancedCode{5, 7, 8})
	})
	t.Run("other authorization identity", func(t *testing.T) {
		c := e.dial(t, "")
		wantCode(t, "AUTH", c.Auth(sasl.NewPlainClient("tiny", "app", password)), 535, smtp.EnhancedCode{5, 7, 8})
	})
	t.Run("unauthenticated relay attempt", func(t *testing.T) {
		c := e.dial(t, "")
		wantCode(t, "MAIL", c.Mail("app@sluice.test", nil), 530, smtp.EnhancedCode{5, 7, 0})
		// go-smtp refuses RCPT outside a transaction before the session
		// sees it: 502 5.5.1 bad sequence.
		wantCode(t, "RCPT", c.Rcpt("victim@example.test", nil), 502, smtp.EnhancedCode{5, 5, 1})
		_, err := c.Data()
		wantCode(t, "DATA", err, 502, smtp.EnhancedCode{5, 5, 1})
	})
	t.Run("envelope sender outside the user's domains", func(t *testing.T) {
		c := e.dial(t, "app")
		wantCode(t, "MAIL", c.Mail("ceo@bank.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
		wantCode(t, "MAIL subdomain", c.Mail("app@evil.sluice.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
		wantCode(t, "MAIL <>", c.Mail("", nil), 550, smtp.EnhancedCode{5, 7, 1})
	})
	t.Run("From header outside the user's domains", func(t *testing.T) {
		c := e.dial(t, "app")
		forged := strings.Replace(body, "app@sluice.test", "ceo@bank.test", 1)
		_, err := send(c, "app@sluice.test", []string{"a@example.test"}, forged)
		wantCode(t, "DATA", err, 550, smtp.EnhancedCode{5, 7, 1})
		forged = "Sender: ceo@bank.test\r\n" + body
		_, err = send(c, "app@sluice.test", []string{"a@example.test"}, forged)
		wantCode(t, "DATA with Sender", err, 550, smtp.EnhancedCode{5, 7, 1})
	})
	t.Run("no From header", func(t *testing.T) {
		c := e.dial(t, "app")
		_, err := send(c, "app@sluice.test", []string{"a@example.test"}, "Subject: x\r\n\r\nhi\r\n")
		wantCode(t, "DATA", err, 554, smtp.EnhancedCode{5, 6, 0})
	})
	t.Run("bad recipient", func(t *testing.T) {
		c := e.dial(t, "app")
		if err := c.Mail("app@sluice.test", nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "RCPT", c.Rcpt("victim@intranet", nil), 501, smtp.EnhancedCode{5, 1, 3})
	})
	t.Run("over the user's size limit", func(t *testing.T) {
		c := e.dial(t, "tiny")
		wantCode(t, "MAIL SIZE=", c.Mail("x@tiny.test", &smtp.MailOptions{Size: 2001}), 552, smtp.EnhancedCode{5, 3, 4})
		big := "From: x@tiny.test\r\n\r\n" + strings.Repeat("0123456789\r\n", 200)
		_, err := send(c, "x@tiny.test", []string{"a@example.test"}, big)
		wantCode(t, "DATA", err, 552, smtp.EnhancedCode{5, 3, 4})
	})
	t.Run("over the user's rate", func(t *testing.T) {
		c := e.dial(t, "slow")
		if err := c.Mail("x@slow.test", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("a@example.test", nil); err != nil {
			t.Fatalf("first recipient (the burst): %v", err)
		}
		wantCode(t, "second RCPT", c.Rcpt("b@example.test", nil), 450, smtp.EnhancedCode{4, 7, 1})
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	})
	e.nothingQueued(t)
}

// Implicit TLS (RFC 8314): the session starts encrypted.
func TestImplicitTLS(t *testing.T) {
	e := start(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeTLS(l) }()
	c, err := smtp.DialTLS(l.Addr().String(), e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered inside TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
		t.Fatal(err)
	}
	reply, err := send(c, "app@sluice.test", []string{"a@example.test"}, body)
	if err != nil {
		t.Fatal(err)
	}
	id := ids(t, reply, 1)["a@example.test"]
	if msg, _ := e.q.Message(context.Background(), id); !bytes.Contains(msg, []byte("with ESMTPSA;")) {
		t.Fatalf("stored message:\n%s", msg)
	}
}

// Clear-text AUTH only when configured, and only on loopback.
func TestInsecureAuth(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.TLSCert, cfg.TLSKey = "", ""
	if _, err := New(cfg, "h", nil, "x", nil); err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("no TLS and no allow_insecure_auth: %v", err)
	}
	cfg.AllowInsecureAuth, cfg.Listen = true, "0.0.0.0:587"
	if _, err := New(cfg, "h", nil, "x", nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("allow_insecure_auth on a public address: %v", err)
	}

	e := start(t, func(c *config.Submission) { c.TLSCert, c.TLSKey, c.AllowInsecureAuth = "", "", true })
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
		t.Fatalf("AUTH on loopback with allow_insecure_auth: %v", err)
	}
	reply, err := send(c, "app@sluice.test", []string{"a@example.test"}, body)
	if err != nil {
		t.Fatal(err)
	}
	id := ids(t, reply, 1)["a@example.test"]
	if msg, _ := e.q.Message(context.Background(), id); !bytes.Contains(msg, []byte("with ESMTPA;")) {
		t.Fatalf("stored message:\n%s", msg)
	}
}

func TestNewRefusesBadUsers(t *testing.T) {
	good, _ := testConfig(t)
	for name, mutate := range map[string]func(*config.Submission){
		"no users":       func(c *config.Submission) { c.Users = nil },
		"plain password": func(c *config.Submission) { c.Users[0].PasswordHash = "secret" },
		"no domains":     func(c *config.Submission) { c.Users[0].Domains = nil },
		"duplicate":      func(c *config.Submission) { c.Users[1].Name = "app" },
		"listen_tls without cert": func(c *config.Submission) {
			c.TLSCert, c.TLSKey, c.AllowInsecureAuth, c.ListenTLS = "", "", true, "127.0.0.1:0"
		},
	} {
		cfg := good
		cfg.Users = append([]config.User(nil), good.Users...)
		mutate(&cfg)
		if _, err := New(cfg, "h", nil, "x", nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// ListenAndServe serves both ports and returns once its context ends.
func TestListenAndServeStopsWithContext(t *testing.T) {
	e := start(t, func(c *config.Submission) { c.Listen, c.ListenTLS = freeAddr(t), freeAddr(t) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ListenAndServe(ctx) }()
	waitFor(t, func() bool {
		c, err := smtp.DialTLS(e.cfg.ListenTLS, e.tlsConfig())
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Hello("x.test") == nil
	})
	c, err := smtp.DialStartTLS(e.cfg.Listen, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	cancel()
	waitReturn(t, "ListenAndServe", done)
	if _, err := net.DialTimeout("tcp", e.cfg.Listen, time.Second); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Failed AUTH attempts in one session wait longer each time (tarpit).
func TestFailedAuthIsSlowedDown(t *testing.T) {
	old := authDelay
	authDelay = 40 * time.Millisecond
	t.Cleanup(func() { authDelay = old })
	e := start(t, nil)
	c := e.dial(t, "")
	start := time.Now()
	for i := 0; i < 3; i++ {
		wantCode(t, "AUTH", c.Auth(sasl.NewPlainClient("", "app", "guess")), 535, smtp.EnhancedCode{5, 7, 8})
	}
	// 40 + 80 + 160 ms
	if el := time.Since(start); el < 280*time.Millisecond {
		t.Fatalf("three failed AUTHs answered in %v; want ≥ 280ms", el)
	}
	if err := e.dial(t, "").Auth(sasl.NewPlainClient("", "app", password)); err != nil {
		t.Fatalf("a fresh session with the right password: %v", err)
	}
}
