package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/text"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// errCampaignGone: the job's campaign was deleted. The job is dropped, not
// settled (settling would recreate the deleted campaign's counters).
var errCampaignGone = errors.New("campaign deleted")

// buildError is a job whose message can never be built (a stored message
// that is missing, a campaign definition that does not compile): it
// carries the failed outcome to settle.
type buildError struct{ out outcome.Outcome }

func (b *buildError) Error() string { return b.out.Text }

func unbuildable(reason string, err error) error {
	return &buildError{outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeMessage, Stage: outcome.StageBuild, Reason: reason, Text: err.Error()}}
}

// source is where a job's message comes from: a campaign's templates, or a
// message stored ready-made with the job.
type source struct {
	tmpl    *message.Template // campaign jobs
	raw     []byte            // stored-message jobs
	envFrom string            // MAIL FROM
	domain  string            // signing domain (the From domain)
	mailto  string            // campaign's unsubscribe mailto, if any
	verp    bool              // tag envFrom with the job id
	pool    string            // campaign's pool: of egress sources ("": its lane's)
}

// sender is the envelope sender for d.
func (s *source) sender(d streams.Delivery) (string, outcome.Outcome) {
	if !s.verp {
		return s.envFrom, outcome.Outcome{}
	}
	from, err := verp.Encode(s.envFrom, d.ID)
	if err != nil {
		return "", outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeSender, Stage: outcome.StageBuild, Reason: "verp", Text: err.Error()}
	}
	return from, outcome.Outcome{}
}

// build returns the job's message as pieces to send in turn: a campaign
// job's composed message (msg, to be released once sent), or a stored
// message in one piece.
func (s *source) build(d streams.Delivery, x message.Extra) (msg *message.Message, parts [][]byte, out outcome.Outcome) {
	if s.raw != nil {
		return nil, [][]byte{s.raw}, outcome.Outcome{}
	}
	if s.mailto != "" && d.Lane == streams.Marketing {
		x = withMailto(x, s.mailto)
	}
	if x.MessageID == "" {
		// The Message-ID names the job, so a report without a VERP
		// address still finds it (pkg/feedback reads it back).
		x.MessageID = verp.MessageID(d.ID, s.domain)
	}
	msg, err := s.tmpl.Compose(d.To, d.Fields, x)
	if err != nil {
		return nil, nil, outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeMessage, Stage: outcome.StageBuild, Reason: "render", Text: err.Error()}
	}
	return msg, msg.Parts(), outcome.Outcome{}
}

// source finds d's message source. errCampaignGone and a *buildError say
// the job cannot be sent; any other error is a failed read, worth another
// try.
func (e *Engine) source(ctx context.Context, d streams.Delivery) (*source, error) {
	switch {
	case d.HasMessage:
		raw, err := e.q.Message(ctx, d.ID)
		if errors.Is(err, streams.ErrNoMessage) {
			return nil, unbuildable("message", err)
		}
		if err != nil {
			return nil, err
		}
		if len(raw) > 0 {
			// Signed and sent as one CRLF-canonical form (an empty
			// message stays empty: it fails as such).
			raw = text.CRLF(raw)
		}
		return &source{raw: raw, envFrom: d.From, domain: domainOf(d.From)}, nil
	case d.Campaign != "":
		p, err := e.cache.get(ctx, d.Campaign)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errCampaignGone
		}
		return p, err
	}
	return nil, unbuildable("job", errNoSource)
}

var errNoSource = errors.New("job has neither a campaign nor a stored message")

// campaignCache decodes and compiles each campaign once per engine, and
// keeps its operator state (paused, cancelled) no older than stateTTL.
type campaignCache struct {
	store *store.Store
	mu    sync.Mutex
	m     map[string]*source
	state map[string]cachedState
	// read holds a campaign's spec read along with its state (a campaign
	// met for the first time: one round trip for both) until get
	// compiles it.
	read map[string][]byte
}

type cachedState struct {
	state string
	at    time.Time
}

// stateTTL bounds how long an engine acts on a stale pause or resume; pause
// must take effect across all engines within seconds.
const stateTTL = time.Second

// stateOf returns the campaign's stored state, refreshed every stateTTL.
func (c *campaignCache) stateOf(ctx context.Context, id string, now time.Time) (string, error) {
	c.mu.Lock()
	cs, ok := c.state[id]
	c.mu.Unlock()
	if ok && now.Sub(cs.at) < stateTTL {
		return cs.state, nil
	}
	c.mu.Lock()
	_, compiled := c.m[id]
	c.mu.Unlock()
	var st string
	var spec []byte
	var err error
	if compiled || ok {
		st, err = c.store.State(ctx, id)
	} else {
		st, spec, err = c.store.StateAndSpec(ctx, id)
	}
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.state == nil {
		c.state = map[string]cachedState{}
	}
	c.state[id] = cachedState{state: st, at: now}
	if spec != nil {
		if c.read == nil {
			c.read = map[string][]byte{}
		}
		c.read[id] = spec
	}
	c.mu.Unlock()
	return st, nil
}

func (c *campaignCache) get(ctx context.Context, id string) (*source, error) {
	c.mu.Lock()
	p, ok := c.m[id]
	raw := c.read[id]
	delete(c.read, id)
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	if raw == nil {
		var err error
		if raw, err = c.store.Spec(ctx, id); err != nil {
			return nil, err
		}
	}
	var spec campaign.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, unbuildable("campaign", fmt.Errorf("campaign %s: decode stored definition: %w", id, err))
	}
	tmpl, err := message.Compile(spec.Parts())
	if err != nil {
		return nil, unbuildable("campaign", fmt.Errorf("campaign %s: %w", id, err))
	}
	p = &source{tmpl: tmpl, envFrom: spec.ReturnPath, domain: tmpl.FromDomain(), mailto: spec.Unsubscribe.Mailto, verp: spec.VERP, pool: spec.Pool}
	if p.envFrom == "" {
		p.envFrom = tmpl.FromAddress()
	}
	if i := strings.LastIndexByte(p.envFrom, '@'); i < 0 {
		return nil, unbuildable("campaign", fmt.Errorf("campaign %s: envelope sender %q has no domain", id, p.envFrom))
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*source{}
	}
	c.m[id] = p
	c.mu.Unlock()
	return p, nil
}

// unsubscribeFor returns the one-click link and headers for a marketing
// job (RFC 8058 §3.1: List-Unsubscribe with an https URI and
// List-Unsubscribe-Post; both are DKIM-signed with the message).
func (e *Engine) unsubscribeFor(d streams.Delivery) message.Extra {
	if e.Unsubscribe == nil || d.Lane != streams.Marketing || d.Campaign == "" {
		return message.Extra{}
	}
	url := unsubscribe.URL(e.Config.Unsubscribe.BaseURL, e.Unsubscribe.Token(d.To, d.Campaign, suppression.Marketing))
	return message.Extra{
		UnsubscribeURL: url,
		Headers: []message.Header{
			{Name: "List-Unsubscribe", Value: "<" + url + ">"},
			{Name: "List-Unsubscribe-Post", Value: "List-Unsubscribe=One-Click"},
		},
	}
}

// withMailto adds the campaign's mailto (RFC 2369) to List-Unsubscribe.
func withMailto(x message.Extra, mailto string) message.Extra {
	m := "<mailto:" + mailto + "?subject=unsubscribe>"
	for i, h := range x.Headers {
		if h.Name == "List-Unsubscribe" {
			hs := append([]message.Header(nil), x.Headers...)
			hs[i].Value = h.Value + ", " + m
			x.Headers = hs
			return x
		}
	}
	x.Headers = append(append([]message.Header(nil), x.Headers...), message.Header{Name: "List-Unsubscribe", Value: m})
	return x
}
