package throttle

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Metrics, in the default registry, labelled by provider. Routed
// destinations (route:HOST, as many as the routes table has) are labelled
// by their key. Other keys that are not a named provider (one per MX host
// set: unbounded) are counted together as "other" and get no gauges.
var (
	rateGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_throttle_rate",
		Help: "Current message rate allowed to the provider, all engines together (messages/s).",
	}, []string{"provider"})
	connLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_throttle_connections_limit",
		Help: "Current connection limit of the provider, all engines together.",
	}, []string{"provider"})
	inUse = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_throttle_connections_in_use",
		Help: "Delivery attempts to the provider in progress in this engine.",
	}, []string{"provider"})
	suspended = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_throttle_suspended",
		Help: "1 while delivery to the provider is suspended by a response rule.",
	}, []string{"provider"})
	outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_throttle_outcomes_total",
		Help: "Delivery attempts by outcome: delivered, deferred, bounced, failed.",
	}, []string{"provider", "status"})
	latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_throttle_delivery_seconds",
		Help:    "Time from permit to accepted delivery.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"provider"})
	steps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_throttle_redis_steps_total",
		Help: "Throttle steps run in Redis: lease (send slots for a batch), prime (a lease ahead of an idle key's first admission), event (a deferral or rule match), sync (periodic report).",
	}, []string{"kind"})
	ruleMatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_throttle_rule_matches_total",
		Help: "Replies that matched a response rule.",
	}, []string{"provider", "rule"})
)

func init() {
	prometheus.MustRegister(rateGauge, connLimit, inUse, suspended, outcomes, latency, steps, ruleMatches)
}

// bucketMetrics are a bucket's series that change with every attempt,
// looked up once: WithLabelValues hashes its labels on every call.
type bucketMetrics struct {
	inUse     prometheus.Gauge
	delivered prometheus.Counter
	latency   prometheus.Observer
}

func newBucketMetrics(label string) *bucketMetrics {
	return &bucketMetrics{
		inUse:     inUse.WithLabelValues(label),
		delivered: outcomes.WithLabelValues(label, string(outcome.Delivered)),
		latency:   latency.WithLabelValues(label),
	}
}

// setGauges publishes b's shared state. Caller holds b.mu.
func setGauges(b *bucket) {
	if b.label == "other" {
		return
	}
	rateGauge.WithLabelValues(b.label).Set(b.rate)
	connLimit.WithLabelValues(b.label).Set(float64(b.conc))
	s := 0.0
	if !b.susp.IsZero() {
		s = 1
	}
	suspended.WithLabelValues(b.label).Set(s)
}

func observe(b *bucket, out outcome.Outcome, took time.Duration, matched []*rule) {
	b.met.inUse.Dec()
	if out.Reason == outcome.Interrupted {
		return
	}
	if out.Status == outcome.Delivered {
		b.met.delivered.Inc()
		b.met.latency.Observe(took.Seconds())
	} else {
		outcomes.WithLabelValues(b.label, string(out.Status)).Inc()
	}
	for _, r := range matched {
		ruleMatches.WithLabelValues(b.label, r.Name).Inc()
	}
}
