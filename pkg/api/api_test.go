package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// Tokens: any may send as any domain, shop only as sluice.test, broken's
// configured hash is not valid hex and must never authenticate.
const (
	anyToken    = "any-0123456789abcdef"
	shopToken   = "shop-0123456789abcdef"
	brokenToken = "broken-0123456789abcdef"
)

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

type env struct {
	url    string
	prefix string
	ks     keyspace.Space
	rdb    *redis.Client
	q      *streams.Queue
}

func start(t *testing.T) *env {
	t.Helper()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	q := streams.New(rdb, ks, "api-test")
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := config.HTTP{APITokens: []config.APIToken{
		{Name: "any", SHA256: sum(anyToken)},
		{Name: "shop", SHA256: strings.ToUpper(sum(shopToken)), Domains: []string{"sluice.test"}},
		{Name: "broken", SHA256: sum(brokenToken)[:63] + "x"},
	}}
	srv := httptest.NewServer(Handler(cfg, q, rdb, ks, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, prefix: prefix, ks: ks, rdb: rdb, q: q}
}

// do sends a request and decodes the JSON answer into out.
func (e *env) do(t *testing.T, method, path, token, ctype, body string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return resp
}

func (e *env) post(t *testing.T, token string, body any) ([]intake.Queued, int) {
	t.Helper()
	b, _ := json.Marshal(body)
	var out sendResponse
	resp := e.do(t, "POST", "/v1/messages", token, "application/json", string(b), &out)
	return out.Messages, resp.StatusCode
}

func (e *env) get(t *testing.T, id string) intake.Status {
	t.Helper()
	var st intake.Status
	if resp := e.do(t, "GET", "/v1/messages/"+id, anyToken, "", "", &st); resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", id, resp.StatusCode)
	}
	return st
}

// Acceptance: a valid request is queued (202), delivered by a real engine
// to a receiver, and GET reports "delivered" with the receiver's reply.
func TestMessagesAreDeliveredAndReported(t *testing.T) {
	e := start(t)
	parts, code := e.post(t, shopToken, map[string]any{
		"from": "Shop <orders@sluice.test>", "to": []string{"buyer@example.test", "Buyer@EXAMPLE.test", "gift@example.test"},
		"subject": "Order 42 — confirmed", "text": "Thanks {{name}}!\n", "html": "<p>Thanks!</p>",
		"headers": map[string]string{"X-Order": "42"},
	})
	if code != http.StatusAccepted || len(parts) != 2 || parts[0].To != "buyer@example.test" || parts[1].To != "gift@example.test" {
		t.Fatalf("POST parts: %d %+v (want 202, duplicates merged)", code, parts)
	}
	raw, code := e.post(t, anyToken, map[string]any{
		"to": []string{"ops@example.test"}, "raw": "From: Ops <ops@other.test>\nSubject: raw\n\nraw body\n",
	})
	if code != http.StatusAccepted || len(raw) != 1 {
		t.Fatalf("POST raw: %d %+v", code, raw)
	}
	jobs := append(parts, raw...)
	for _, j := range jobs {
		if st := e.get(t, j.ID); st.State != "queued" || st.Final || st.Last != nil {
			t.Fatalf("before any engine: %+v", st)
		}
	}

	sink := smtptest.Start(t, smtptest.Options{})
	enginetest.Start(t, enginetest.Config(e.prefix, sink.Addr))
	deadline := time.Now().Add(15 * time.Second)
	for _, j := range jobs {
		st := e.get(t, j.ID)
		for !st.Final && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			st = e.get(t, j.ID)
		}
		rec, _ := streams.DecodeRecord(e.rdb.HGet(context.Background(), intake.Tally(e.ks, j.ID).Records, j.ID).Val())
		if st.State != "delivered" || st.Attempts != 1 || st.Last == nil || st.Last.Code != 250 ||
			st.Last.Text == "" || st.Last.Text != rec.Reply || time.Since(st.Last.At) > time.Minute {
			t.Fatalf("GET %s after delivery: %+v %+v", j.ID, st, st.Last)
		}
	}
	byRcpt := map[string]smtptest.Message{}
	for _, m := range sink.Messages() {
		byRcpt[m.To[0]] = m
	}
	if len(byRcpt) != 3 {
		t.Fatalf("receiver got %d messages", len(byRcpt))
	}
	m := byRcpt["buyer@example.test"]
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	mt, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if m.From != "orders@sluice.test" || subject != "Order 42 — confirmed" || msg.Header.Get("X-Order") != "42" ||
		msg.Header.Get("To") != "buyer@example.test" || msg.Header.Get("Date") == "" || msg.Header.Get("Message-Id") == "" ||
		mt != "multipart/alternative" || !bytes.Contains(m.Data, []byte("Thanks {{name}}!")) {
		t.Fatalf("composed message from %s:\n%s", m.From, m.Data)
	}
	r := byRcpt["ops@example.test"]
	if r.From != "ops@other.test" || !bytes.Contains(r.Data, []byte("\r\nSubject: raw\r\n\r\nraw body\r\n")) || !bytes.Contains(r.Data, []byte("Message-ID: <")) {
		t.Fatalf("raw message from %s:\n%s", r.From, r.Data)
	}
}

// Every bad request gets its 4xx and a JSON error naming the field; none
// queues anything.
func TestBadRequests(t *testing.T) {
	e := start(t)
	good := `"from":"a@sluice.test","to":["b@example.test"],"subject":"s","text":"t"`
	many := make([]string, MaxRecipients+1)
	for i := range many {
		many[i] = `"r` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `@example.test"`
	}
	for _, c := range []struct {
		name, method, path, token, ctype, body string
		code                                   int
		field                                  string
	}{
		{"no token", "POST", "/v1/messages", "", "application/json", "{" + good + "}", 401, ""},
		{"wrong token", "POST", "/v1/messages", "nope", "application/json", "{" + good + "}", 401, ""},
		{"token with a broken configured hash", "POST", "/v1/messages", brokenToken, "application/json", "{" + good + "}", 401, ""},
		{"GET without token", "GET", "/v1/messages/X", "", "", "", 401, ""},
		{"not JSON", "POST", "/v1/messages", anyToken, "text/plain", "{" + good + "}", 415, ""},
		{"invalid JSON", "POST", "/v1/messages", anyToken, "application/json", "{" + good, 400, ""},
		{"unknown field", "POST", "/v1/messages", anyToken, "application/json", "{" + good + `,"htm":"x"}`, 400, "htm"},
		{"two values", "POST", "/v1/messages", anyToken, "application/json", "{" + good + "}{}", 400, ""},
		{"no from", "POST", "/v1/messages", anyToken, "application/json", `{"to":["b@example.test"],"subject":"s","text":"t"}`, 400, "from"},
		{"bad from", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@","to":["b@example.test"],"subject":"s","text":"t"}`, 400, "from"},
		{"no to", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","subject":"s","text":"t"}`, 400, "to"},
		{"bad to", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test","Bob <c@example.test>"],"subject":"s","text":"t"}`, 400, "to[1]"},
		{"too many to", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":[` + strings.Join(many, ",") + `],"subject":"s","text":"t"}`, 400, "to"},
		{"no subject", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test"],"text":"t"}`, 400, "subject"},
		{"no body", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test"],"subject":"s"}`, 400, "text"},
		{"subject injection", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test"],"subject":"s\r\nBcc: x@example.test","text":"t"}`, 400, "subject"},
		{"header injection", "POST", "/v1/messages", anyToken, "application/json", "{" + good + `,"headers":{"X-Note":"a\r\nBcc: x@example.test"}}`, 400, "headers.X-Note"},
		{"structural header", "POST", "/v1/messages", anyToken, "application/json", "{" + good + `,"headers":{"Bcc":"x@example.test"}}`, 400, "headers.Bcc"},
		{"raw with parts", "POST", "/v1/messages", anyToken, "application/json", `{"to":["b@example.test"],"subject":"s","raw":"From: a@sluice.test\r\n\r\nx"}`, 400, "raw"},
		{"raw without From", "POST", "/v1/messages", anyToken, "application/json", `{"to":["b@example.test"],"raw":"Subject: s\r\n\r\nx"}`, 400, "raw"},
		{"from outside the token's domains", "POST", "/v1/messages", shopToken, "application/json", `{"from":"a@bank.test","to":["b@example.test"],"subject":"s","text":"t"}`, 403, "from"},
		{"raw From outside the token's domains", "POST", "/v1/messages", shopToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test"],"raw":"From: ceo@bank.test\r\n\r\nx"}`, 403, "from"},
		{"oversize", "POST", "/v1/messages", anyToken, "application/json", `{"from":"a@sluice.test","to":["b@example.test"],"subject":"s","text":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, ""},
		{"unknown id", "GET", "/v1/messages/NOSUCHID", anyToken, "", "", 404, "id"},
		{"wrong method", "DELETE", "/v1/messages/X", anyToken, "", "", 405, ""},
		{"unknown path", "GET", "/v1/other", anyToken, "", "", 404, ""},
	} {
		var out errorBody
		resp := e.do(t, c.method, c.path, c.token, c.ctype, c.body, &out)
		if resp.StatusCode != c.code || out.Field != c.field || out.Error == "" {
			t.Errorf("%s: %d %+v, want %d field %q", c.name, resp.StatusCode, out, c.code, c.field)
		}
		if c.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate challenge", c.name)
		}
	}
	ctx := context.Background()
	tl := intake.Tally(e.ks, intake.NewID(time.Now())) // today's records
	if n, _, _ := e.q.Depth(ctx, streams.Transactional); n != 0 {
		t.Errorf("stream holds %d jobs after bad requests", n)
	}
	if n := e.rdb.Exists(ctx, tl.Records, tl.Counters).Val(); n != 0 {
		t.Errorf("tally written by bad requests")
	}
}
