package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// sendRequest is the POST /v1/messages body: parts (from, subject, text
// and/or html, headers) or a raw RFC 5322 message. With raw, from is the
// envelope sender and defaults to the message's From address.
type sendRequest struct {
	From    string            `json:"from"`
	To      []string          `json:"to"`
	ReplyTo string            `json:"reply_to,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Text    string            `json:"text,omitempty"`
	HTML    string            `json:"html,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Raw     string            `json:"raw,omitempty"`
}

// sendResponse lists the jobs created, one per recipient.
type sendResponse struct {
	Messages []intake.Queued `json:"messages"`
}

// storeTimeout bounds the Redis writes of one request; they go on if the
// client disconnects, so a request is not cut off half queued.
const storeTimeout = 15 * time.Second

// inputError is a 4xx answer.
type inputError struct {
	code       int
	field, msg string
}

func bad(field, format string, args ...any) *inputError {
	return &inputError{code: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// send handles POST /v1/messages.
func (a *api) send(w http.ResponseWriter, r *http.Request, t *token) {
	from, to, build, ierr := parse(w, r, t)
	if ierr != nil {
		fail(w, ierr.code, ierr.field, ierr.msg)
		return
	}
	a.enqueue(w, r, t, from, to, build)
}

// parse checks the whole request before anything is queued.
func parse(w http.ResponseWriter, r *http.Request, t *token) (from string, to []string, build func(string) ([]byte, error), ierr *inputError) {
	req, ierr := decode(w, r)
	if ierr != nil {
		return "", nil, nil, ierr
	}
	if to, ierr = recipients(req.To); ierr != nil {
		return "", nil, nil, ierr
	}
	from, build, ierr = prepare(req, t)
	return from, to, build, ierr
}

func (a *api) enqueue(w http.ResponseWriter, r *http.Request, t *token, from string, to []string, build func(string) ([]byte, error)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	queued, err := a.queue.Enqueue(ctx, from, to, build)
	if err != nil {
		a.log.Error("api: queue message", "token", t.name, "from", from, "recipients", len(to), "queued", queued, "err", err)
		// The jobs listed were queued and will be sent; retry only the rest.
		writeJSON(w, http.StatusServiceUnavailable, struct {
			errorBody
			sendResponse
		}{errorBody{Error: "could not queue every recipient; the messages listed are queued, retry the others"}, sendResponse{queued}})
		return
	}
	a.log.Info("api: accepted", "token", t.name, "from", from, "recipients", len(queued))
	writeJSON(w, http.StatusAccepted, sendResponse{queued})
}

// decode reads the JSON body strictly: unknown fields are errors, so a
// misspelt "html" is reported instead of silently dropped.
func decode(w http.ResponseWriter, r *http.Request) (*sendRequest, *inputError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, &inputError{code: http.StatusUnsupportedMediaType, msg: "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	var req sendRequest
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		return nil, bad("", "the body must be one JSON object; something follows it")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &inputError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)}
	case err != nil:
		return nil, jsonError(err)
	}
	return &req, nil
}

// recipients checks the recipient list and drops repeated addresses.
func recipients(list []string) ([]string, *inputError) {
	if len(list) == 0 {
		return nil, bad("to", "at least one recipient is required")
	}
	if len(list) > MaxRecipients {
		return nil, bad("to", "%d recipients; at most %d per request", len(list), MaxRecipients)
	}
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for i, s := range list {
		addr, err := address.Normalize(s)
		if err != nil {
			return nil, bad(fmt.Sprintf("to[%d]", i), "%v", err)
		}
		// Case-insensitive, as campaigns de-duplicate (see
		// streams.Job.RecordField): a double send costs more than a merge.
		if key := strings.ToLower(addr); !seen[key] {
			seen[key] = true
			out = append(out, addr)
		}
	}
	return out, nil
}

// prepare checks the message and the token's right to its senders, and
// returns the envelope sender and the per-recipient builder.
func prepare(req *sendRequest, t *token) (string, func(string) ([]byte, error), *inputError) {
	if req.Raw != "" {
		return prepareRaw(req, t)
	}
	switch {
	case strings.TrimSpace(req.From) == "":
		return "", nil, bad("from", "from is required")
	case strings.TrimSpace(req.Subject) == "":
		return "", nil, bad("subject", "subject is required")
	case req.Text == "" && req.HTML == "":
		return "", nil, bad("text", "text or html (or both) is required")
	}
	c, err := intake.Compose(intake.Parts{From: req.From, ReplyTo: req.ReplyTo, Subject: req.Subject,
		Text: req.Text, HTML: req.HTML, Headers: req.Headers})
	if err != nil {
		var pe *message.PartError
		if errors.As(err, &pe) {
			field := pe.Part
			if pe.Header != "" {
				field += "." + pe.Header
			}
			return "", nil, bad(field, "%v", pe.Err)
		}
		return "", nil, bad("", "%v", err)
	}
	if ierr := t.allows("from", c.From()); ierr != nil {
		return "", nil, ierr
	}
	return c.From(), c.Render, nil
}

func prepareRaw(req *sendRequest, t *token) (string, func(string) ([]byte, error), *inputError) {
	if req.Subject != "" || req.Text != "" || req.HTML != "" || len(req.Headers) > 0 || req.ReplyTo != "" {
		return "", nil, bad("raw", "raw is a complete message: leave out subject, text, html, headers and reply_to")
	}
	raw, err := intake.PrepareRaw([]byte(req.Raw), time.Now())
	if err != nil {
		return "", nil, bad("raw", "%v", err)
	}
	from := req.From
	if from == "" {
		if len(raw.From) > 1 {
			return "", nil, bad("from", "the From header has several addresses: give the envelope sender in from")
		}
		from = raw.From[0].Address
	}
	if from, err = address.Normalize(from); err != nil {
		return "", nil, bad("from", "envelope sender: %v", err)
	}
	checks := []string{from}
	for _, a := range raw.From {
		checks = append(checks, a.Address)
	}
	if raw.Sender != nil {
		checks = append(checks, raw.Sender.Address)
	}
	for _, addr := range checks {
		if ierr := t.allows("from", addr); ierr != nil {
			return "", nil, ierr
		}
	}
	return from, func(string) ([]byte, error) { return raw.Msg, nil }, nil
}

// allows answers 403 when the token may not send as addr.
func (t *token) allows(field, addr string) *inputError {
	if t.domains == nil || t.domains.Allows(addr) {
		return nil
	}
	return &inputError{code: http.StatusForbidden, field: field,
		msg: fmt.Sprintf("token %q may not send as %s (not one of its domains)", t.name, addr)}
}
