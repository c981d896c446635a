package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// Queue depth gauges, in the default registry. Every engine reports the
// same shared figures (they are read from Redis), so take any one's.
var (
	laneDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_lane_depth",
		Help: "Jobs of a lane not yet routed into a line (stream) or waiting for a retry or a scheduled start (delayed).",
	}, []string{"lane", "where"})
	lineDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_line_depth",
		Help: "Jobs waiting in the lines of a destination (throttle key), all campaigns; reason: due (to be read now) or paced (the throttle named a later time: rate, connections, suspension).",
	}, []string{"lane", "key", "reason"})
	settleSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_settle_seconds",
		Help:    "Time to record an attempt's outcome durably in Redis (the settle step, retries through an outage included).",
		Buckets: prometheus.ExponentialBuckets(0.0002, 4, 10), // 0.2 ms … 52 s
	})
)

func init() { prometheus.MustRegister(laneDepth, lineDepth, settleSeconds, scrapes) }

// depthEvery is how often an engine refreshes the queue depth gauges
// while they are read (see scraped).
const depthEvery = 5 * time.Second

// readFor: the gauges are refreshed while the metrics were gathered
// (a /metrics scrape) within this. Reading every line's depth costs
// Redis a few commands per line, which no one should pay for figures no
// one reads: an engine with 100,000 jobs waiting and no scraper is idle.
const readFor = time.Minute

// scrapes notes when the metrics were last gathered. It describes no
// metric of its own (an unchecked collector).
var scrapes = &scrapeClock{}

type scrapeClock struct{ last atomic.Int64 }

func (c *scrapeClock) Describe(chan<- *prometheus.Desc) {}
func (c *scrapeClock) Collect(chan<- prometheus.Metric) { c.last.Store(time.Now().UnixNano()) }

// scraped reports whether the metrics were gathered within readFor.
func scraped(now time.Time) bool {
	at := scrapes.last.Load()
	return at != 0 && now.Sub(time.Unix(0, at)) < readFor
}

// gauge refreshes the queue depth gauges.
func (e *Engine) gauge(ctx context.Context) {
	for _, l := range streams.Lanes {
		stream, delayed, err := e.q.Depth(ctx, l)
		if err != nil {
			return
		}
		laneDepth.WithLabelValues(string(l), "stream").Set(float64(stream))
		laneDepth.WithLabelValues(string(l), "delayed").Set(float64(delayed))
	}
	ds, err := e.q.Depths(ctx)
	if err != nil {
		return
	}
	lineDepth.Reset() // keys no longer waiting drop out
	for _, d := range ds {
		lineDepth.WithLabelValues(string(d.Lane), d.Key, "due").Set(float64(d.Waiting - d.Scheduled))
		lineDepth.WithLabelValues(string(d.Lane), d.Key, "paced").Set(float64(d.Scheduled))
	}
}
