package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics, in the default registry, labelled by webhook name.
var (
	lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_webhook_lag_events",
		Help: "Events after the webhook's cursor, not yet acknowledged by its receiver (counted up to 100000, every 5 s).",
	}, []string{"webhook"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_webhook_failures_total",
		Help: "Failed POSTs to the webhook (error, timeout or a status other than 2xx); each is retried.",
	}, []string{"webhook"})
	givenUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_webhook_given_up_events_total",
		Help: "Events skipped after their batch failed for retry_for.",
	}, []string{"webhook"})
	sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_webhook_events_total",
		Help: "Events acknowledged by the webhook's receiver.",
	}, []string{"webhook"})
)

func init() {
	prometheus.MustRegister(lag, failures, givenUp, sent)
}
