package api

import (
	"errors"
	"net/http"

	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// status handles GET /v1/messages/{id}.
func (a *api) status(w http.ResponseWriter, r *http.Request, t *token) {
	id := r.PathValue("id")
	st, err := intake.Lookup(r.Context(), a.rdb, a.ks, id)
	switch {
	case errors.Is(err, intake.ErrNotFound):
		fail(w, http.StatusNotFound, "id", "no message with id "+id)
	case err != nil:
		a.log.Error("api: status", "id", id, "token", t.name, "err", err)
		fail(w, http.StatusInternalServerError, "", "could not read the message's status")
	default:
		writeJSON(w, http.StatusOK, st)
	}
}
