package unsubscribe

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

var secret = []byte("0123456789abcdef-test-secret")

func signer(t *testing.T, key []byte, old ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(key, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	s := signer(t, secret)
	tok := s.Token("Ann.Lee+news@Example.TEST", "spring-sale", suppression.Marketing)
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(tok) {
		t.Fatalf("token %q is not URL-safe", tok)
	}
	addr, campaign, scope, err := s.Parse(tok)
	if err != nil || addr != "ann.lee+news@example.test" || campaign != "spring-sale" || scope != suppression.Marketing {
		t.Fatalf("Parse = %q %q %q %v", addr, campaign, scope, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	if want := 2 + 1 + len("spring-sale") + len("ann.lee+news@example.test") + macLen; len(raw) != want {
		t.Fatalf("token is %d bytes, want %d", len(raw), want)
	}
	if tok != s.Token("ann.lee+news@example.test", "spring-sale", suppression.Marketing) {
		t.Fatal("token not deterministic over equivalent addresses")
	}
	g := s.Token("a@x.test", "", suppression.Global)
	if _, c, sc, err := s.Parse(g); err != nil || c != "" || sc != suppression.Global {
		t.Fatalf("global token: %q %q %v", c, sc, err)
	}
	if _, _, sc, _ := s.Parse(s.Token("a@x.test", "c", "")); sc != suppression.Marketing {
		t.Fatalf("empty scope gave %q", sc)
	}
}

func TestTokenRejects(t *testing.T) {
	s := signer(t, secret)
	tok := s.Token("ann@example.test", "c1", suppression.Marketing)
	raw, _ := base64.RawURLEncoding.DecodeString(tok)

	// Every single-bit change anywhere in the token is caught.
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		if _, _, _, err := s.Parse(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	// Widening the scope by rewriting the scope byte, keeping the MAC.
	b := bytes.Clone(raw)
	b[1] = 'g'
	if _, _, _, err := s.Parse(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrInvalidToken) {
		t.Fatal("scope rewrite accepted")
	}
	bad := []string{"", "x", tok[:len(tok)-1], tok + "A", tok + "=", strings.ToUpper(tok), "!!!" + tok, strings.Repeat("A", 2000)}
	for _, b := range bad {
		if _, _, _, err := s.Parse(b); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Parse(%.40q) accepted", b)
		}
	}
	// Another secret: rejected; the same secret as an old one: accepted.
	other := signer(t, []byte("another-secret-of-enough-length"))
	if _, _, _, err := other.Parse(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatal("token verified under another secret")
	}
	rotated := signer(t, []byte("another-secret-of-enough-length"), secret)
	if a, _, _, err := rotated.Parse(tok); err != nil || a != "ann@example.test" {
		t.Fatalf("old secret after rotation: %v", err)
	}
	if _, _, _, err := s.Parse(rotated.Token("ann@example.test", "c1", suppression.Marketing)); err == nil {
		t.Fatal("new token verified under the old secret alone")
	}
	// A token for an invalid address is never honoured.
	if _, _, _, err := s.Parse(s.Token("not an address", "c", "")); !errors.Is(err, ErrInvalidToken) {
		t.Fatal("token of an invalid address accepted")
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewSigner(secret, []byte("short")); err == nil {
		t.Fatal("short old secret accepted")
	}
}

func TestURL(t *testing.T) {
	if got := URL("https://mail.example.test/", "abc"); got != "https://mail.example.test/u/abc" {
		t.Fatal(got)
	}
	if got := URL("https://mail.example.test/sluice", "abc"); got != "https://mail.example.test/sluice/u/abc" {
		t.Fatal(got)
	}
}

type fixture struct {
	srv    *httptest.Server
	s      *Signer
	l      *suppression.List
	rdb    *redis.Client
	prefix string
	logs   *bytes.Buffer
}

func newFixture(t *testing.T) fixture {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	l := suppression.New(rdb, keyspace.Space(prefix))
	s := signer(t, secret)
	logs := &bytes.Buffer{}
	srv := httptest.NewServer(Handler(s, l, slog.New(slog.NewTextHandler(logs, nil))))
	t.Cleanup(srv.Close)
	return fixture{srv, s, l, rdb, prefix, logs}
}

// keys counts every Redis key of the test's prefix: "nothing changed"
// means nothing at all was written.
func (f fixture) keys(t *testing.T) int {
	t.Helper()
	ks, err := f.rdb.Keys(context.Background(), "{"+f.prefix+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(ks)
}

func post(t *testing.T, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const form = "application/x-www-form-urlencoded"

func TestOneClickPost(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	u := URL(f.srv.URL, f.s.Token("Ann@Example.test", "spring", suppression.Marketing))
	resp, body := post(t, u, form, PostHeader)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Set-Cookie") != "" || !strings.Contains(body, "Unsubscribed") {
		t.Fatalf("POST: %d %q cookies=%q", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
	}
	e, err := f.l.Get(ctx, "ann@example.test")
	if err != nil || e == nil || e.Reason != suppression.Unsubscribe || e.Scope != suppression.Marketing ||
		e.Source != "one-click" || e.Campaign != "spring" || e.Detail != "RFC 8058 one-click POST" {
		t.Fatalf("entry = %+v, %v", e, err)
	}
	if time.Since(e.FirstSeen) > time.Minute {
		t.Fatalf("first seen %v", e.FirstSeen)
	}
	// A marketing unsubscribe leaves transactional mail alone.
	if r, _ := f.l.Check(ctx, suppression.LaneTransactional, []string{"ann@example.test"}); r[0] != nil {
		t.Fatal("marketing unsubscribe blocks transactional mail")
	}
	// Repeating it is harmless: same entry, one audit event.
	for range 3 {
		if resp, _ := post(t, u, form, PostHeader); resp.StatusCode != http.StatusOK {
			t.Fatalf("repeat: %d", resp.StatusCode)
		}
	}
	again, _ := f.l.Get(ctx, "ann@example.test")
	if !again.FirstSeen.Equal(e.FirstSeen) || again.Reason != e.Reason || again.Scope != e.Scope {
		t.Fatalf("after repeats %+v", again)
	}
	if ev, _ := f.l.Audit(ctx, "ann@example.test"); len(ev) != 1 || ev[0].Actor != "one-click" {
		t.Fatalf("audit after repeats: %+v", ev)
	}
	if !strings.Contains(f.logs.String(), "msg=unsubscribed addr=ann@example.test campaign=spring scope=marketing one_click=true") {
		t.Fatalf("log: %s", f.logs)
	}
}

func TestMultipartAndGlobal(t *testing.T) {
	f := newFixture(t)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("List-Unsubscribe", "One-Click")
	mw.Close()
	u := URL(f.srv.URL, f.s.Token("bo@example.test", "", suppression.Global))
	if resp, _ := post(t, u, mw.FormDataContentType(), b.String()); resp.StatusCode != http.StatusOK {
		t.Fatalf("multipart POST: %d", resp.StatusCode)
	}
	e, _ := f.l.Get(context.Background(), "bo@example.test")
	if e == nil || e.Scope != suppression.Global || e.Detail != "RFC 8058 one-click POST" {
		t.Fatalf("entry %+v", e)
	}
	// A bare POST (no RFC 8058 body) still unsubscribes, and says so.
	u = URL(f.srv.URL, f.s.Token("cy@example.test", "", suppression.Marketing))
	if resp, _ := post(t, u, "text/plain", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("bare POST: %d", resp.StatusCode)
	}
	if e, _ := f.l.Get(context.Background(), "cy@example.test"); e == nil || e.Detail != "POST without the RFC 8058 body" {
		t.Fatalf("bare POST entry %+v", e)
	}
}

func TestGetChangesNothing(t *testing.T) {
	f := newFixture(t)
	u := URL(f.srv.URL, f.s.Token("ann@example.test", "spring", suppression.Marketing))
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s: %d %v", method, resp.StatusCode, resp.Header)
		}
		if method == http.MethodGet && (!strings.Contains(string(body), `<form method="post">`) ||
			!strings.Contains(string(body), `<input type="hidden" name="List-Unsubscribe" value="One-Click">`) ||
			!strings.Contains(string(body), "ann@example.test")) {
			t.Fatalf("page: %s", body)
		}
	}
	if n := f.keys(t); n != 0 {
		t.Fatalf("GET wrote %d keys", n)
	}
	// The page's form posts back to the same URL with the RFC 8058 body.
	if resp, _ := post(t, u, form, "List-Unsubscribe=One-Click"); resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	if e, _ := f.l.Get(context.Background(), "ann@example.test"); e == nil {
		t.Fatal("form POST did not unsubscribe")
	}
}

func TestTamperedToken(t *testing.T) {
	f := newFixture(t)
	tok := f.s.Token("ann@example.test", "spring", suppression.Marketing)
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	raw[5] ^= 0x20 // another address, same MAC
	forged := base64.RawURLEncoding.EncodeToString(raw)
	otherKey := signer(t, []byte("not-the-server-secret-0000"))
	for _, tk := range []string{forged, tok[:20], "garbage", otherKey.Token("ann@example.test", "spring", suppression.Marketing)} {
		resp, body := post(t, URL(f.srv.URL, tk), form, PostHeader)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Invalid link") {
			t.Fatalf("POST %q: %d", tk, resp.StatusCode)
		}
		resp, err := http.Get(URL(f.srv.URL, tk))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("GET %q: %d", tk, resp.StatusCode)
		}
	}
	if n := f.keys(t); n != 0 {
		t.Fatalf("tampered tokens wrote %d keys", n)
	}
	req, _ := http.NewRequest(http.MethodPut, URL(f.srv.URL, tok), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
}

func TestRedisDownIs500AndLogged(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	defer dead.Close()
	logs := &bytes.Buffer{}
	s := signer(t, secret)
	srv := httptest.NewServer(Handler(s, suppression.New(dead, "x"), slog.New(slog.NewTextHandler(logs, nil))))
	defer srv.Close()
	resp, _ := post(t, URL(srv.URL, s.Token("ann@example.test", "spring", suppression.Marketing)), form, PostHeader)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="unsubscribe not stored" addr=ann@example.test campaign=spring scope=marketing`) {
		t.Fatalf("log: %s", logs)
	}
}
