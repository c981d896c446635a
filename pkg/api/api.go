// Package api is sluice's HTTP API for transactional mail, mounted on the
// engine's HTTP listener:
//
//	POST /v1/messages       queue a message (JSON parts or a raw RFC 5322 message) → 202 with job IDs
//	GET  /v1/messages/{id}  a job's state and the outcome of its last attempt
//	GET  /v1/openapi.json   the OpenAPI 3.1 description of these (no token needed)
//
// Clients authenticate with a bearer token (RFC 6750 §2.1) whose SHA-256
// is in the config; a token may be limited to sender domains. Errors are
// 4xx/5xx with a JSON body {"error": "...", "field": "..."}.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// Limits on one POST.
const (
	MaxBodyBytes  = 10 << 20 // the JSON request, raw message included
	MaxRecipients = 50
)

// api serves the routes.
type api struct {
	tokens []token
	queue  *intake.Queue
	rdb    redis.UniversalClient
	ks     keyspace.Space
	log    *slog.Logger
}

// token is one configured client.
type token struct {
	name    string
	sum     [sha256.Size]byte
	domains intake.Domains // nil: any sender domain
}

// Handler returns the API, routing /v1/messages and /v1/messages/{id};
// mount it on the engine's mux at "/v1/". Jobs are queued through q and
// read back from rdb under ks. A configured token whose sha256 is not 64
// hex digits is logged and ignored: it can never match.
func Handler(cfg config.HTTP, q *streams.Queue, rdb redis.UniversalClient, ks keyspace.Space, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	a := &api{queue: intake.NewQueue(q, ks), rdb: rdb, ks: ks, log: log}
	for i, t := range cfg.APITokens {
		sum, err := hex.DecodeString(strings.TrimSpace(t.SHA256))
		if err != nil || len(sum) != sha256.Size {
			log.Error("api: ignoring token with an invalid sha256 (want 64 hex digits)", "index", i, "name", t.Name)
			continue
		}
		tk := token{name: t.Name}
		copy(tk.sum[:], sum)
		if len(t.Domains) > 0 {
			tk.domains = intake.NewDomains(t.Domains)
		}
		a.tokens = append(a.tokens, tk)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	mux.HandleFunc("POST /v1/messages", a.authed(a.send))
	mux.HandleFunc("GET /v1/messages/{id}", a.authed(a.status))
	// Without these, ServeMux would answer wrong methods and unknown paths
	// in plain text.
	mux.HandleFunc("/v1/messages", methodNotAllowed("POST"))
	mux.HandleFunc("/v1/messages/{id}", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "", "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// authed runs h for requests with a valid bearer token.
func (a *api) authed(h func(http.ResponseWriter, *http.Request, *token)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			// RFC 6750 §3: no credentials, no error code.
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			fail(w, http.StatusUnauthorized, "", "missing bearer token (Authorization: Bearer TOKEN)")
			return
		}
		if t := a.token(strings.TrimSpace(secret)); t != nil {
			h(w, r, t)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, "", "invalid bearer token")
	}
}

// token finds the client whose token hashes to the configured sum. Every
// entry is compared in constant time, so timing tells nothing about
// which bytes matched.
func (a *api) token(secret string) *token {
	sum := sha256.Sum256([]byte(secret))
	var found *token
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	return found
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		fail(w, http.StatusMethodNotAllowed, "", r.Method+" is not allowed here (allowed: "+allow+")")
	}
}
