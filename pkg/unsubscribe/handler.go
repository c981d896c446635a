package unsubscribe

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/suppression"
)

// maxBody bounds a POST body: the RFC 8058 body is 26 bytes.
const maxBody = 16 << 10

// Handler serves /u/{token}:
//
//   - POST unsubscribes: the body a mailbox provider sends is
//     "List-Unsubscribe=One-Click" (RFC 8058 §3.1), form-urlencoded or
//     multipart; the confirmation page posts the same. No cookie, login or
//     redirect is involved, as §3.2 requires. A POST without that body is
//     honoured too: only a holder of the signed link can send it, and
//     refusing a real unsubscribe is the worse error. Repeating it changes
//     nothing.
//   - GET (and HEAD) shows a confirmation page with a button and never
//     unsubscribes: link scanners and previews fetch every URL in a mail.
//     It reads nothing from Redis either, so scanners cost nothing.
//
// A token that does not verify gets 400 and changes nothing. If Redis
// fails the answer is 500 and the request is logged at error level with
// the address, so no unsubscribe is silently lost.
func Handler(s *Signer, l *suppression.List, logger *slog.Logger) http.Handler {
	return HandlerWithEvents(s, l, logger, nil)
}

// HandlerWithEvents is Handler that also appends an unsubscribed event
// to ev (pkg/events) after each stored unsubscribe.
func HandlerWithEvents(s *Signer, l *suppression.List, logger *slog.Logger, ev *events.Log) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{s: s, l: l, log: logger, ev: ev}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /u/{token}", h.confirm)
	mux.HandleFunc("POST /u/{token}", h.unsubscribe)
	return mux
}

type handler struct {
	s   *Signer
	l   *suppression.List
	log *slog.Logger
	ev  *events.Log
}

func (h *handler) confirm(w http.ResponseWriter, r *http.Request) {
	addr, campaign, scope, err := h.s.Parse(r.PathValue("token"))
	if err != nil {
		h.invalid(w, r)
		return
	}
	h.page(w, http.StatusOK, confirmPage, pageData{Address: addr, Campaign: campaign, Global: scope == suppression.Global})
}

func (h *handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	addr, campaign, scope, err := h.s.Parse(r.PathValue("token"))
	if err != nil {
		h.invalid(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	oneClick := false
	if err := r.ParseMultipartForm(maxBody); err == nil || err == http.ErrNotMultipart {
		oneClick = r.PostForm.Get("List-Unsubscribe") == "One-Click"
	}
	detail := "POST without the RFC 8058 body"
	if oneClick {
		detail = "RFC 8058 one-click POST"
	}
	e := suppression.Entry{Address: addr, Reason: suppression.Unsubscribe, Scope: scope, Campaign: campaign,
		Source: "one-click", Detail: detail}
	if err := h.l.Add(r.Context(), e); err != nil {
		h.log.Error("unsubscribe not stored", "addr", addr, "campaign", campaign, "scope", scope, "err", err)
		h.page(w, http.StatusInternalServerError, messagePage, pageData{
			Title: "Please try again", Text: "We could not record your request just now. Please try again in a few minutes."})
		return
	}
	h.log.Info("unsubscribed", "addr", addr, "campaign", campaign, "scope", scope, "one_click", oneClick)
	if h.ev != nil {
		if _, err := h.ev.Append(r.Context(), events.Event{Type: events.Unsubscribed, Campaign: campaign, Recipient: addr, Reason: detail}); err != nil {
			h.log.Warn("unsubscribe: event not appended", "addr", addr, "err", err)
		}
	}
	h.page(w, http.StatusOK, messagePage, pageData{Title: "Unsubscribed", Address: addr,
		Text: "You will not receive these emails any more."})
}

func (h *handler) invalid(w http.ResponseWriter, r *http.Request) {
	h.log.Info("unsubscribe: invalid token", "method", r.Method, "remote", r.RemoteAddr)
	h.page(w, http.StatusBadRequest, messagePage, pageData{Title: "Invalid link",
		Text: "This unsubscribe link is damaged or incomplete. Copy the whole link from the email, or use the unsubscribe option of your mail program."})
}

func (h *handler) page(w http.ResponseWriter, status int, t *template.Template, d pageData) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer") // the URL carries the token
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Robots-Tag", "noindex")
	// No scripts, no framing (a framed button could be clicked by trickery).
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := t.Execute(w, d); err != nil {
		h.log.Warn("unsubscribe: write page", "err", err)
	}
}

type pageData struct {
	Title, Text, Address, Campaign string
	Global                         bool
}

const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;line-height:1.5}button{font-size:1.1em;padding:.5em 1.5em}</style>
</head><body>`

var confirmPage = template.Must(template.New("confirm").Parse(pageHead + `
<h1>Unsubscribe</h1>
<p>Stop sending {{if .Global}}all email{{else}}marketing email{{end}} to <strong>{{.Address}}</strong>?</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(pageHead + `
<h1>{{.Title}}</h1>
<p>{{if .Address}}<strong>{{.Address}}</strong>: {{end}}{{.Text}}</p>
</body></html>
`))
