package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCounters(t *testing.T) {
	Settled("spring", "delivered", "")
	Settled("spring", "bounced", "expired")
	if v := testutil.ToFloat64(campaignOutcomes.WithLabelValues("spring", "expired")); v != 1 {
		t.Errorf("expired = %v", v)
	}
	h := HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/messages", nil))
	if v := testutil.ToFloat64(apiRequests.WithLabelValues("POST", "202")); v != 1 {
		t.Errorf("api POST 202 = %v", v)
	}
	Submission(&smtp.SMTPError{Code: 250})
	Submission(&smtp.SMTPError{Code: 554})
	Submission(errors.New("redis down"))
	for _, r := range []string{"accepted", "refused", "failed"} {
		if v := testutil.ToFloat64(submissions.WithLabelValues(r)); v != 1 {
			t.Errorf("submission %s = %v", r, v)
		}
	}
}
