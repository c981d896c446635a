package engine

import (
	"context"
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

func init() { prometheus.MustRegister(laneDepth, lineDepth, settleSeconds) }

// depthEvery is how often an engine refreshes the queue depth gauges.
const depthEvery = 5 * time.Second

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
