// Package metrics holds the Prometheus series that are not one package's
// own: per-campaign outcome counters (counted where the engine settles),
// HTTP API requests and submitted messages. They are in the default
// registry, served at /metrics.
package metrics

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	campaignOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_campaign_outcomes_total",
		Help: "Outcomes recorded by this engine, by campaign (\"\" for transactional mail) and status: delivered, deferred (each deferral), bounced, expired, failed, suppressed, cancelled.",
	}, []string{"campaign", "status"})
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_api_requests_total",
		Help: "HTTP API requests by method and status code.",
	}, []string{"method", "code"})
	submissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_submission_messages_total",
		Help: "Messages offered over SMTP submission (DATA), by result: accepted, refused (5xx) or failed (4xx, errors).",
	}, []string{"result"})
)

func init() {
	prometheus.MustRegister(campaignOutcomes, apiRequests, submissions)
}

// Settled counts one recorded outcome; a bounce for age counts as expired.
func Settled(campaign, status, reason string) {
	if status == "bounced" && reason == "expired" {
		status = "expired"
	}
	campaignOutcomes.WithLabelValues(campaign, status).Inc()
}

// HTTP counts h's requests by method and status code.
func HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		apiRequests.WithLabelValues(r.Method, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Submission counts one DATA by the reply it got (err: go-smtp's
// *SMTPError, 250 included, or another error).
func Submission(err error) {
	result := "failed"
	var se *smtp.SMTPError
	switch {
	case err == nil:
		result = "accepted"
	case errors.As(err, &se) && se.Code >= 200 && se.Code < 300:
		result = "accepted"
	case errors.As(err, &se) && se.Code >= 500:
		result = "refused"
	}
	submissions.WithLabelValues(result).Inc()
}
