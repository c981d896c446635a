// Package launch expands a campaign into per-recipient jobs: it validates
// the whole recipient list first (nothing is enqueued from a list with
// problems unless told to skip them), stores the campaign once, then
// streams recipients into their shards' lane streams in batches written
// atomically and checkpointed per shard, so an interrupted launch resumes
// without queuing anyone twice.
package launch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// Options tune a launch.
type Options struct {
	// SkipInvalid enqueues the valid recipients of a list that has invalid
	// ones (each still reported); by default such a list is refused.
	SkipInvalid bool
	// BatchSize is how many recipients go into one atomic enqueue (500).
	BatchSize int
	// Suppressed reports which addresses must not be sent to on lane; nil
	// means no suppression list.
	Suppressed func(ctx context.Context, lane string, addrs []string) ([]bool, error)
	// Progress, when set, is called after every batch.
	Progress func(Progress)
	// SendAt, when set, overrides the campaign's send_at (campaignctl
	// launch --at).
	SendAt time.Time
	// AllowOutside lets text_file/html_file name files outside the
	// campaign file's directory (campaign.LoadOptions).
	AllowOutside bool
	// WaitReplicas makes each batch wait until that many replicas of its
	// master have it, for up to WaitTimeout (zero: 1s), or the launch
	// fails there and resumes from the last batch replicated
	// (redis.wait_replicas; streams.Queue.WaitReplicas).
	WaitReplicas int
	WaitTimeout  time.Duration
}

// Progress is reported while enqueuing.
type Progress struct {
	Line, Enqueued, Suppressed, Duplicates, Invalid int
}

// Result says what a launch did.
type Result struct {
	ID         string
	Lane       string
	Valid      int                        // valid recipients in the list
	Invalid    []*campaign.RecipientError // reported problems (at most MaxReported)
	InvalidN   int                        // all invalid recipients
	Enqueued   int                        // jobs added by this run
	Suppressed int                        // recipients settled as suppressed by this run
	Duplicates int                        // rows whose address was already in the campaign
	// DuplicateLines are the list lines of those rows (at most
	// MaxReported), in order. Duplicates are found by the enqueue
	// script's claim of each address, not by validate: an exact set of a
	// million addresses would cost ~60 MB, and a duplicate is skipped,
	// not refused.
	DuplicateLines []int
	Resumed        bool // an interrupted launch was continued
	Already        bool // the campaign had been launched completely before
	// UTF8 lists recipients whose local part is not ASCII (at most
	// MaxReported; UTF8N counts all): only a receiver offering SMTPUTF8
	// (RFC 6531) takes them. A non-ASCII domain alone goes out as IDNA.
	UTF8  []*campaign.RecipientError
	UTF8N int

	// unrenderable are the lines whose message could not be rendered,
	// skipped by enqueue (SkipInvalid).
	unrenderable map[int]bool
}

// MaxReported caps the invalid recipients kept in a Result.
const MaxReported = 100

// ErrInvalidRecipients is returned (wrapped) when the list has invalid
// recipients and SkipInvalid is off.
var ErrInvalidRecipients = errors.New("invalid recipients")

// afterBatch is a test seam: an error from it stops the launch as a crash
// would, after a batch has been written.
var afterBatch func(batches int) error

// Launch validates the campaign file at path and enqueues its recipients.
func Launch(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, path string, opt Options) (Result, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 500
	}
	spec, res, err := Check(path, opt)
	if err != nil {
		return res, err
	}
	if !opt.SendAt.IsZero() {
		spec.SendAt = opt.SendAt
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return res, fmt.Errorf("encode campaign: %w", err)
	}
	fp, err := fingerprint(specJSON, spec.RecipientsPath())
	if err != nil {
		return res, err
	}
	st := store.New(rdb, ks)
	created, err := st.Create(ctx, spec.ID, spec.Lane, fp, specJSON)
	if err != nil {
		return res, err
	}
	var checkpoints [keyspace.Shards]int
	switch created {
	case store.Done:
		res.Already = true
		return res, nil
	case store.Resume:
		res.Resumed = true
		if checkpoints, err = st.Checkpoints(ctx, spec.ID); err != nil {
			return res, err
		}
	}
	if err := enqueue(ctx, rdb, ks, st, spec, checkpoints, opt, &res); err != nil {
		return res, err
	}
	return res, st.MarkLaunched(ctx, spec.ID, spec.SendAt)
}

// Check does everything Launch checks, without touching Redis: the
// campaign file, its templates, and every recipient (rendering one message
// per distinct set of merge fields). lint uses it.
func Check(path string, opt Options) (*campaign.Spec, Result, error) {
	spec, err := campaign.LoadWith(path, campaign.LoadOptions{AllowOutside: opt.AllowOutside})
	if err != nil {
		return nil, Result{}, err
	}
	tmpl, err := message.Compile(spec.Parts())
	if err != nil {
		return nil, Result{}, fmt.Errorf("%s: %w", path, err)
	}
	res := Result{ID: spec.ID, Lane: spec.Lane}
	if err := validate(spec, tmpl, opt.SkipInvalid, &res); err != nil {
		return spec, res, err
	}
	if res.InvalidN > 0 && !opt.SkipInvalid {
		return spec, res, fmt.Errorf("%s: %d %w (first: %v); fix the list or launch with --skip-invalid",
			spec.RecipientsPath(), res.InvalidN, ErrInvalidRecipients, res.Invalid[0])
	}
	return spec, res, nil
}

// validate reads the whole list once: counts valid recipients, collects
// invalid ones, and renders every recipient's message (about 25µs a row),
// so a row the template cannot be rendered for (a field it needs is
// missing or does not suit a function) or whose message exceeds
// campaign.MaxMessageBytes is found now, not mid-send, exactly as lint
// finds it. With skipInvalid such a row is reported and skipped like an
// invalid one; without, it stops the launch.
func validate(spec *campaign.Spec, tmpl *message.Template, skipInvalid bool, res *Result) error {
	r, err := campaign.OpenRecipients(spec.RecipientsPath())
	if err != nil {
		return err
	}
	defer r.Close()
	invalid := func(re *campaign.RecipientError) {
		res.InvalidN++
		if len(res.Invalid) < MaxReported {
			res.Invalid = append(res.Invalid, re)
		}
	}
	for {
		rc, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var re *campaign.RecipientError
		if errors.As(err, &re) {
			invalid(re)
			continue
		}
		if err != nil {
			return err
		}
		if rerr := renderable(tmpl, rc); rerr != nil {
			if !skipInvalid {
				return fmt.Errorf("%s:%d: cannot render the message for %s: %w", spec.RecipientsPath(), rc.Line, rc.Email, rerr)
			}
			if res.unrenderable == nil {
				res.unrenderable = map[int]bool{}
			}
			res.unrenderable[rc.Line] = true
			invalid(&campaign.RecipientError{Path: spec.RecipientsPath(), Line: rc.Line, Email: rc.Email,
				Reason: rc.Email + ": cannot render the message: " + rerr.Error()})
			continue
		}
		noteUTF8(spec, rc, res)
		res.Valid++
	}
}

// noteUTF8 lists rc when its local part is not ASCII.
func noteUTF8(spec *campaign.Spec, rc campaign.Recipient, res *Result) {
	if address.NeedsSMTPUTF8(rc.Email) {
		res.UTF8N++
		if len(res.UTF8) < MaxReported {
			res.UTF8 = append(res.UTF8, &campaign.RecipientError{Path: spec.RecipientsPath(), Line: rc.Line, Email: rc.Email,
				Reason: rc.Email + ": the local part is not ASCII: only a receiver offering SMTPUTF8 (RFC 6531) accepts it; others refuse it (5.6.7)"})
		}
	}
}

// renderable renders rc's message and checks its size.
func renderable(tmpl *message.Template, rc campaign.Recipient) error {
	msg, err := tmpl.Render(rc.Email, rc.Fields, message.Extra{UnsubscribeURL: "https://unsubscribe.invalid/u/check"})
	if err != nil {
		return err
	}
	if len(msg) > campaign.MaxMessageBytes {
		return fmt.Errorf("the message would be %s, larger than %s, the limit for one message", campaign.Size(len(msg)), campaign.Size(campaign.MaxMessageBytes))
	}
	return nil
}

// fingerprint identifies the campaign's content: its definition and the
// recipients file's bytes.
func fingerprint(spec []byte, recipients string) (string, error) {
	h := sha256.New()
	h.Write(spec)
	f, err := os.Open(recipients)
	if err != nil {
		return "", fmt.Errorf("fingerprint recipients: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("fingerprint recipients: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// enqueue streams the recipients into the lane in batches, each written
// atomically per shard with that shard's checkpoint. A resumed launch
// skips a row at or before its shard's checkpoint: every such row was
// written (batches reach a shard in file order), and none after it.
func enqueue(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, st *store.Store, spec *campaign.Spec, checkpoints [keyspace.Shards]int, opt Options, res *Result) error {
	lane, err := streams.ParseLane(spec.Lane)
	if err != nil {
		return err
	}
	r, err := campaign.OpenRecipients(spec.RecipientsPath())
	if err != nil {
		return err
	}
	defer r.Close()
	q := streams.New(rdb, ks, "campaignctl")
	q.WaitReplicas(opt.WaitReplicas, opt.WaitTimeout)
	if err := q.Init(ctx); err != nil {
		return err
	}
	b := &streams.Batch{Lane: lane, Tally: st.Tally(spec.ID)}
	var pending []*streams.Job
	now := time.Now().UnixMilli()
	if spec.SendAt.After(time.Now()) {
		// Scheduled: the jobs wait in the delayed set, durably, and the
		// engines' mover releases them at send_at — or as soon as an
		// engine runs again if none was running then.
		b.Due = spec.SendAt
		now = spec.SendAt.UnixMilli() // max age counts from the send time
	}
	batches := 0
	flush := func(line int) error {
		if len(pending) == 0 {
			return nil
		}
		blocked := make([]bool, len(pending))
		if opt.Suppressed != nil {
			addrs := make([]string, len(pending))
			for i, j := range pending {
				addrs[i] = j.To
			}
			if blocked, err = opt.Suppressed(ctx, string(lane), addrs); err != nil {
				return fmt.Errorf("check suppression list: %w", err)
			}
		}
		for i, j := range pending {
			if blocked[i] {
				b.AddFinal(j, streams.Record{Status: "suppressed", Reason: "suppressed", Line: j.Line, JobID: j.ID})
			} else if err := b.Add(j); err != nil {
				return err
			}
		}
		b.Checkpoint = strconv.Itoa(line)
		out, dupAt, err := q.EnqueueDuplicates(ctx, b)
		if err != nil {
			return err
		}
		res.Enqueued += out.Added
		res.Suppressed += out.Final
		res.Duplicates += out.Duplicates
		for _, i := range dupAt {
			if len(res.DuplicateLines) < MaxReported && i >= 0 && i < len(pending) {
				res.DuplicateLines = append(res.DuplicateLines, pending[i].Line)
			}
		}
		pending = pending[:0]
		batches++
		if opt.Progress != nil {
			opt.Progress(Progress{Line: line, Enqueued: res.Enqueued, Suppressed: res.Suppressed, Duplicates: res.Duplicates, Invalid: res.InvalidN})
		}
		if afterBatch != nil {
			return afterBatch(batches)
		}
		return nil
	}
	last := 0
	for {
		rc, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *campaign.RecipientError
		if errors.As(err, &re) {
			continue // reported by validate; skipped by the caller's choice
		}
		if err != nil {
			return err
		}
		if rc.Line <= checkpoints[keyspace.ShardOf(rc.Email)] || res.unrenderable[rc.Line] {
			continue // before its shard's checkpoint, or reported by validate
		}
		last = rc.Line
		pending = append(pending, &streams.Job{
			ID: spec.ID + "/" + strconv.Itoa(rc.Line), Campaign: spec.ID, To: rc.Email,
			Fields: rc.Fields, Lane: lane, Line: rc.Line, First: now,
		})
		if len(pending) == opt.BatchSize {
			if err := flush(last); err != nil {
				return err
			}
		}
	}
	return flush(last)
}
