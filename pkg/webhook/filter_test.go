package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/webhook"
)

// TestTypesFilterAndGivingUp: a webhook gets only its types, and a batch
// its receiver keeps refusing is skipped after retry_for (the cursor
// moves on), while a second webhook on the same stream is not held up.
func TestTypesFilterAndGivingUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	var mu sync.Mutex
	var got []events.Type
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b webhook.Body
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		for _, e := range b.Events {
			got = append(got, e.Type)
		}
		mu.Unlock()
	}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer refuse.Close()
	bounces := config.Webhook{Name: "bounces", URL: ok.URL, Secret: "k", Types: []string{"bounced", "complained"}, Batch: 10, Timeout: time.Second, RetryFor: time.Hour}
	dead := config.Webhook{Name: "dead", URL: refuse.URL, Secret: "k", Batch: 10, Timeout: time.Second, RetryFor: 300 * time.Millisecond}
	opts := webhook.Options{Owner: "t", MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: 100 * time.Millisecond}
	go webhook.Run(ctx, rdb, ks, []config.Webhook{bounces, dead}, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, w := range []config.Webhook{bounces, dead} {
		for cur := ""; cur == ""; time.Sleep(10 * time.Millisecond) {
			cur, _ = webhook.Cursor(ctx, rdb, ks, w)
		}
	}
	log := events.New(rdb, ks)
	// Events of several recipients, so of several shards.
	for i, ty := range []events.Type{events.Queued, events.Bounced, events.Delivered, events.Complained} {
		if _, err := log.Append(ctx, events.Event{Type: ty, Campaign: "c", Recipient: fmt.Sprintf("r%d@example.test", i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cb, _ := webhook.Cursor(ctx, rdb, ks, bounces)
		cd, _ := webhook.Cursor(ctx, rdb, ks, dead)
		nb, err1 := log.Behind(ctx, cb, 10)
		nd, err2 := log.Behind(ctx, cd, 10)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if nb == 0 && nd == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursors %s and %s are %d and %d events behind", cb, cd, nb, nd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// Events of different recipients sit in different shards: within one
	// millisecond their merged order is the shards', not the appends'.
	slices.Sort(got)
	if len(got) != 2 || got[0] != events.Bounced || got[1] != events.Complained {
		t.Fatalf("the bounces webhook got %v", got)
	}
}
