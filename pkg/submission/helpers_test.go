package submission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) {
	authDelay = time.Millisecond // the tarpit has its own test
	os.Exit(redistest.Main(m))
}

const password = "correct horse battery staple"

// env is a running submission server and what it writes to.
type env struct {
	srv    *Server
	addr   string // STARTTLS listener
	prefix string
	ks     keyspace.Space
	rdb    *redis.Client
	q      *streams.Queue
	roots  *x509.CertPool
	cfg    config.Submission
}

// writeCert writes a fresh self-signed certificate (for localhost) and its
// key as PEM files, as an operator would configure them.
func writeCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	cert := smtptest.SelfSigned(t).Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(leaf)
	return certFile, keyFile, roots
}

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// testConfig has three users: app (sluice.test, defaults), tiny (2000
// bytes) and slow (one message, then a very low rate).
func testConfig(t *testing.T) (config.Submission, *x509.CertPool) {
	certFile, keyFile, roots := writeCert(t)
	h := hash(t, password)
	return config.Submission{
		Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile,
		Users: []config.User{
			{Name: "app", PasswordHash: h, Domains: []string{"sluice.test", "Mail.Sluice.test"}},
			{Name: "tiny", PasswordHash: h, Domains: []string{"tiny.test"}, MaxMessageBytes: 2000},
			{Name: "slow", PasswordHash: h, Domains: []string{"slow.test"}, Rate: 0.001},
		},
	}, roots
}

// start runs a server with cfg (testConfig when nil) on a loopback port;
// prep, if any, adjusts the server before it serves.
func start(t *testing.T, mutate func(*config.Submission), prep ...func(*Server)) *env {
	t.Helper()
	cfg, roots := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	q := streams.New(rdb, ks, "submission-test")
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, "mta.sluice.test", q, ks, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prep {
		p(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &env{srv: srv, addr: l.Addr().String(), prefix: prefix, ks: ks, rdb: rdb, q: q, roots: roots, cfg: cfg}
}

func (e *env) tlsConfig() *tls.Config { return &tls.Config{RootCAs: e.roots, ServerName: "localhost"} }

// dial opens a session and does STARTTLS; with user set it also logs in
// with AUTH PLAIN.
func (e *env) dial(t *testing.T, user string) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(e.addr, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
			t.Fatalf("AUTH PLAIN as %s: %v", user, err)
		}
	}
	return c
}

// send runs one transaction and returns the reply to the final dot.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

var queuedRe = regexp.MustCompile(`queued as (\S+) for <([^>]+)>`)

// ids parses the job IDs, by recipient, out of a 250 reply.
func ids(t *testing.T, reply string, want int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range queuedRe.FindAllStringSubmatch(reply, -1) {
		out[m[2]] = m[1]
	}
	if len(out) != want {
		t.Fatalf("reply %q names %d jobs, want %d", reply, len(out), want)
	}
	return out
}

// wantCode asserts err is an SMTP reply with code and enhanced code.
func wantCode(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("%s: got %v, want %d %v", what, err, code, enh)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("%s: got %d %v %q, want %d %v", what, se.Code, se.EnhancedCode, se.Message, code, enh)
	}
}

// nothingQueued asserts the transactional lane and tally are empty.
func (e *env) nothingQueued(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if n, _, _ := e.q.Depth(ctx, streams.Transactional); n != 0 {
		t.Errorf("transactional stream holds %d jobs, want 0", n)
	}
	tl := intake.Tally(e.ks, intake.NewID(time.Now())) // today's records
	if n := e.rdb.Exists(ctx, tl.Records, tl.Counters).Val(); n != 0 {
		t.Errorf("transactional tally exists (%d keys), want none", n)
	}
	if keys := e.rdb.Keys(ctx, "{"+string(e.ks)+".*:msg:*").Val(); len(keys) != 0 {
		t.Errorf("stored messages %v, want none", keys)
	}
}

// record returns a job's record, or fails.
func (e *env) record(t *testing.T, id string) streams.Record {
	t.Helper()
	raw, err := e.rdb.HGet(context.Background(), intake.Tally(e.ks, id).Records, id).Result()
	if err != nil {
		t.Fatalf("record of %s: %v", id, err)
	}
	rec, err := streams.DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// waitReturn waits for what (a serving call whose context was cancelled)
// to return on done, without error.
func waitReturn(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}
