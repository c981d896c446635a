package engine

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The depth gauges are read from Redis only while the metrics are
// gathered: a gather marks them read for readFor, no longer.
func TestGaugesOnlyWhileScraped(t *testing.T) {
	now := time.Now()
	scrapes.last.Store(now.Add(-readFor - time.Second).UnixNano())
	if scraped(now) {
		t.Fatal("a scrape older than readFor still counts")
	}
	if _, err := prometheus.DefaultGatherer.Gather(); err != nil {
		t.Fatal(err)
	}
	if !scraped(time.Now()) || scraped(time.Now().Add(readFor+time.Second)) {
		t.Fatal("a gather did not mark the gauges read for readFor")
	}
}
