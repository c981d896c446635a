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
	"time"

	"github.com/redis/go-redis/v9"

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
	// BatchSize, when set, is how many recipients each batch holds (one
	// script per shard, in one round trip). By default the first batch
	// holds 64, so the engines get the first jobs at once, and each next
	// one twice as many, up to DefaultBatch.
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
	// OldEngines are running engines of a version that cannot read a
	// launch's packs or runs of events (streams.Lacking): while any runs,
	// the jobs go in the lane one an entry, as before the packs, or the
	// queued events as JSON arrays, as before the runs.
	OldEngines []string
	Resumed    bool // an interrupted launch was continued
	Already    bool // the campaign had been launched completely before
	// UTF8 lists recipients whose local part is not ASCII (at most
	// MaxReported; UTF8N counts all): only a receiver offering SMTPUTF8
	// (RFC 6531) takes them. A non-ASCII domain alone goes out as IDNA.
	UTF8  []*campaign.RecipientError
	UTF8N int

	// unrenderable are the lines whose message could not be rendered,
	// skipped by enqueue (SkipInvalid).
	unrenderable map[int]bool
}

// DefaultBatch is the largest batch by default: about 200 recipients per
// shard and script. Larger batches gained little and cost memory: a
// launch holds three batches at a time (read, encoded, being written).
const DefaultBatch = 2400

// MaxReported caps the invalid recipients kept in a Result.
const MaxReported = 100

// ErrInvalidRecipients is returned (wrapped) when the list has invalid
// recipients and SkipInvalid is off.
var ErrInvalidRecipients = errors.New("invalid recipients")

// afterBatch is a test seam: an error from it stops the launch as a crash
// would, after a batch has been written.
var afterBatch func(batches int) error

// Launch validates the campaign file at path and enqueues its recipients.
// While it validates, it readies Redis for its writes (see prepare).
func Launch(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, path string, opt Options) (Result, error) {
	loaded := make(chan struct{})
	go func() { defer close(loaded); loadScripts(ctx, rdb, ks) }()
	spec, res, err := Check(path, opt)
	<-loaded
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
	// The lanes' streams and groups (an engine's start makes them too)
	// are made while the campaign is stored.
	inited := make(chan error, 1)
	go func() { inited <- streams.New(rdb, ks, "campaignctl").Init(ctx) }()
	st := store.New(rdb, ks)
	created, err := st.Create(ctx, spec.ID, spec.Lane, fp, specJSON)
	if ierr := <-inited; err == nil {
		err = ierr
	}
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

// loadScripts loads the launch's scripts into Redis while the list is
// being validated (writing nothing: a list that fails validation leaves
// no trace): on a fresh or restarted Redis each would otherwise cost a
// NOSCRIPT round trip at its first use, on the way to the first batch. A
// failure to load one is no error: it loads itself then.
func loadScripts(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space) {
	_ = store.New(rdb, ks).LoadLaunchScripts(ctx)
	_ = streams.New(rdb, ks, "campaignctl").LoadEnqueueScript(ctx)
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
