// Package dashboard is the engine's live status page at "/" on its HTTP
// listener: campaigns (state, progress, rate, ETA), providers (rate,
// connections, state, last deferral reply), delivered and deferred per
// second over the last hour, and the suppression list's size. The page is
// plain HTML with a small inline script that polls /dashboard.json; every
// asset is embedded (no CDN: the machines may be offline).
//
// A sampler reads the shared state once a second (store.List,
// throttle.Inspect: the same as campaignctl status and limits show), so
// the figures are those of all engines together, and keeps an hour of
// per-second counts in memory.
package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

//go:embed index.html
var assets embed.FS

// window is how many seconds of history the chart keeps.
const window = 3600

// cookie holds a browser's token after /?token=TOKEN.
const cookie = "sluice_ui"

// Campaign is one campaign's line on the page.
type Campaign struct {
	store.Status
	Final      int64    `json:"final"`
	Rate       float64  `json:"rate"` // final outcomes per second over the last minute
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
}

// Provider is one throttle key's line.
type Provider struct {
	throttle.Status
	DeliveredPerSec float64 `json:"delivered_per_sec"`
}

// Point is one second of the chart: all providers together, and each
// provider that delivered or deferred anything in it ([delivered,
// deferred] by provider name).
type Point struct {
	T         int64               `json:"t"` // unix seconds
	Delivered int64               `json:"delivered"`
	Deferred  int64               `json:"deferred"`
	By        map[string][2]int64 `json:"by,omitempty"`
}

// Snapshot is what /dashboard.json answers.
type Snapshot struct {
	At          time.Time  `json:"at"`
	Campaigns   []Campaign `json:"campaigns"`
	Providers   []Provider `json:"providers"`
	Suppressed  int64      `json:"suppression_size"`
	Points      []Point    `json:"points"` // after ?since=UNIX (all kept without it)
	SampleError string     `json:"sample_error,omitempty"`
}

// Dashboard samples the shared state and serves the page.
type Dashboard struct {
	rdb    redis.UniversalClient
	ks     keyspace.Space
	st     *store.Store
	supp   *suppression.List
	tokens [][]byte // SHA-256 of the tokens that may see the page
	log    *slog.Logger
	every  time.Duration

	mu       sync.Mutex
	snap     Snapshot
	points   []Point
	prevProv map[string][2]int64 // delivered, deferred at the last sample
	prevAt   time.Time
	finals   map[string][]sample // per campaign, the last minute
}

type sample struct {
	at    time.Time
	final int64
}

// New returns a dashboard for the tokens whose SHA-256 (hex) are given;
// with none the page answers 403.
func New(rdb redis.UniversalClient, ks keyspace.Space, supp *suppression.List, tokenSHA256 []string, log *slog.Logger) *Dashboard {
	d := &Dashboard{rdb: rdb, ks: ks, st: store.New(rdb, ks), supp: supp, log: log, every: time.Second,
		finals: map[string][]sample{}}
	for _, h := range tokenSHA256 {
		if b, err := hex.DecodeString(strings.ToLower(h)); err == nil && len(b) == sha256.Size {
			d.tokens = append(d.tokens, b)
		}
	}
	return d
}

// Run samples once a second until ctx ends; without tokens (the page is
// off) it returns at once.
func (d *Dashboard) Run(ctx context.Context) {
	if len(d.tokens) == 0 {
		return
	}
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		d.sample(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dashboard) sample(ctx context.Context, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []string
	camps, err := d.st.List(ctx)
	if err != nil {
		errs = append(errs, err.Error())
	}
	provs, err := throttle.Inspect(ctx, d.rdb, d.ks)
	if err != nil {
		errs = append(errs, err.Error())
	}
	size, err := d.supp.Size(ctx)
	if err != nil {
		errs = append(errs, err.Error())
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	snap := Snapshot{At: now, Suppressed: size, SampleError: strings.Join(errs, "; ")}
	for _, c := range camps {
		final := c.Delivered + c.Bounced + c.Suppressed + c.Failed + c.Cancelled
		h := append(d.finals[c.ID], sample{now, final})
		for len(h) > 1 && now.Sub(h[0].at) > time.Minute {
			h = h[1:]
		}
		d.finals[c.ID] = h
		cc := Campaign{Status: c, Final: final}
		if dt := now.Sub(h[0].at).Seconds(); dt >= 1 {
			cc.Rate = float64(final-h[0].final) / dt
		}
		if c.Queued > 0 && cc.Rate > 0 {
			eta := float64(c.Queued) / cc.Rate
			cc.ETASeconds = &eta
		}
		snap.Campaigns = append(snap.Campaigns, cc)
	}
	// The per-second chart: deltas of the providers' shared counters.
	var del, def int64
	by := map[string][2]int64{}
	prev := d.prevProv
	d.prevProv = make(map[string][2]int64, len(provs))
	dt := now.Sub(d.prevAt).Seconds()
	for _, p := range provs {
		d.prevProv[p.Provider] = [2]int64{p.Delivered, p.Deferred}
		pp := Provider{Status: p}
		if old, ok := prev[p.Provider]; ok {
			pd, pf := max(p.Delivered-old[0], 0), max(p.Deferred-old[1], 0)
			del += pd
			def += pf
			if pd > 0 || pf > 0 {
				by[p.Provider] = [2]int64{pd, pf}
			}
			if dt > 0 {
				pp.DeliveredPerSec = float64(max(p.Delivered-old[0], 0)) / dt
			}
		}
		snap.Providers = append(snap.Providers, pp)
	}
	sort.Slice(snap.Providers, func(i, j int) bool { return snap.Providers[i].Provider < snap.Providers[j].Provider })
	if prev != nil {
		pt := Point{T: now.Unix(), Delivered: del, Deferred: def}
		if len(by) > 0 {
			pt.By = by
		}
		d.points = append(d.points, pt)
		if len(d.points) > window {
			d.points = d.points[len(d.points)-window:]
		}
	}
	d.prevAt = now
	d.snap = snap
}

// Handler serves GET / (the page) and GET /dashboard.json, for a bearer
// token or the cookie set by /?token=TOKEN.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("token"); tok != "" && d.allowed(tok) {
			http.SetCookie(w, &http.Cookie{Name: cookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		if !d.authorized(w, r) {
			return
		}
		page, _ := assets.ReadFile("index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /dashboard.json", func(w http.ResponseWriter, r *http.Request) {
		if !d.authorized(w, r) {
			return
		}
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		d.mu.Lock()
		snap := d.snap
		i := sort.Search(len(d.points), func(i int) bool { return d.points[i].T > since })
		snap.Points = append([]Point{}, d.points[i:]...)
		d.mu.Unlock()
		if snap.Campaigns == nil {
			snap.Campaigns = []Campaign{}
		}
		if snap.Providers == nil {
			snap.Providers = []Provider{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(snap)
	})
	return mux
}

func (d *Dashboard) authorized(w http.ResponseWriter, r *http.Request) bool {
	if len(d.tokens) == 0 {
		http.Error(w, "the dashboard is off: set http.ui_token (the sha256 of a token) or api_tokens", http.StatusForbidden)
		return false
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if c, err := r.Cookie(cookie); tok == "" && err == nil {
		tok = c.Value
	}
	if tok != "" && d.allowed(tok) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	http.Error(w, "unauthorized: open /?token=TOKEN once, or send Authorization: Bearer TOKEN", http.StatusUnauthorized)
	return false
}

func (d *Dashboard) allowed(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, t := range d.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], t)
	}
	return ok == 1
}
