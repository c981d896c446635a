package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// firstBatch is the size of the first batch a launch writes unless told
// (Options.BatchSize): small, so the engines have the campaign's first
// jobs at once; each later batch is twice the one before, up to
// DefaultBatch.
const firstBatch = 64

// chunk is a run of the list's rows on its way to Redis.
type chunk struct {
	jobs  []*streams.Job
	line  int // the last row's line: the checkpoint once written
	batch *streams.Batch
}

// enqueue streams the recipients into the lane in batches, each written
// atomically per shard with that shard's checkpoint. A resumed launch
// skips a row at or before its shard's checkpoint: every such row was
// written (batches reach a shard in file order), and none after it.
//
// Three goroutines share the work, each batch passing from one to the
// next: one reads and parses the list, one checks a batch against the
// suppression list and encodes its jobs, and this one writes it (all its
// shards' scripts in one round trip) and waits for the reply before the
// next, which keeps the batches in file order.
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
	q := streams.New(rdb, ks, "campaignctl") // its streams made by Launch
	q.WaitReplicas(opt.WaitReplicas, opt.WaitTimeout)
	e := &encoder{lane: lane, tally: st.Tally(spec.ID), first: time.Now().UnixMilli(), opt: opt}
	if spec.SendAt.After(time.Now()) {
		// Scheduled: the jobs wait in the delayed set, durably, and the
		// engines' mover releases them at send_at — or as soon as an
		// engine runs again if none was running then.
		e.due = spec.SendAt
		e.first = spec.SendAt.UnixMilli() // max age counts from the send time
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parsed, encoded := make(chan chunk), make(chan chunk)
	readErr, encErr := make(chan error, 1), make(chan error, 1)
	go func() {
		defer close(parsed)
		readErr <- read(ctx, r, spec, checkpoints, res.unrenderable, opt.BatchSize, parsed)
	}()
	go func() {
		defer close(encoded)
		encErr <- e.run(ctx, parsed, encoded)
	}()
	werr := writeBatches(ctx, q, encoded, opt, res)
	// On an error, stop the others and wait for them: the list is closed
	// only once nobody reads it. The first stage to fail says why.
	cancel()
	for range encoded {
	}
	eerr, rerr := <-encErr, <-readErr
	for _, err := range []error{werr, eerr, rerr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// writeBatches enqueues the batches in turn, each once the one before is
// written.
func writeBatches(ctx context.Context, q *streams.Queue, in <-chan chunk, opt Options, res *Result) error {
	batches := 0
	for c := range in {
		out, dupAt, err := q.EnqueueDuplicates(ctx, c.batch)
		if err != nil {
			return err
		}
		res.Enqueued += out.Added
		res.Suppressed += out.Final
		res.Duplicates += out.Duplicates
		for _, i := range dupAt {
			if len(res.DuplicateLines) < MaxReported && i >= 0 && i < len(c.jobs) {
				res.DuplicateLines = append(res.DuplicateLines, c.jobs[i].Line)
			}
		}
		batches++
		if opt.Progress != nil {
			opt.Progress(Progress{Line: c.line, Enqueued: res.Enqueued, Suppressed: res.Suppressed, Duplicates: res.Duplicates, Invalid: res.InvalidN})
		}
		if afterBatch != nil {
			if err := afterBatch(batches); err != nil {
				return err
			}
		}
	}
	return nil
}

// read parses the list into chunks of jobs, skipping the rows validate
// reported and those a resumed launch wrote before.
func read(ctx context.Context, r *campaign.Reader, spec *campaign.Spec, checkpoints [keyspace.Shards]int, skip map[int]bool, fixed int, out chan<- chunk) error {
	size, max := firstBatch, DefaultBatch
	if fixed > 0 {
		size, max = fixed, fixed
	}
	c := chunk{jobs: make([]*streams.Job, 0, size)}
	send := func() bool {
		select {
		case out <- c:
		case <-ctx.Done():
			return false
		}
		size = min(2*size, max)
		c = chunk{jobs: make([]*streams.Job, 0, size)}
		return true
	}
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
		if rc.Line <= checkpoints[keyspace.ShardOf(rc.Email)] || skip[rc.Line] {
			continue // before its shard's checkpoint, or reported by validate
		}
		c.line = rc.Line
		c.jobs = append(c.jobs, &streams.Job{
			ID: spec.ID + "/" + strconv.Itoa(rc.Line), Campaign: spec.ID, To: rc.Email,
			Fields: rc.Fields, Line: rc.Line,
		})
		if len(c.jobs) == size && !send() {
			return ctx.Err()
		}
	}
	if len(c.jobs) > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// encoder turns chunks of jobs into batches: the suppression list's
// verdicts (one look-up per batch) and the jobs' encoding.
type encoder struct {
	lane  streams.Lane
	tally streams.Tally
	due   time.Time
	first int64 // the jobs' First
	opt   Options
}

func (e *encoder) run(ctx context.Context, in <-chan chunk, out chan<- chunk) error {
	for c := range in {
		if err := e.encode(ctx, &c); err != nil {
			return err
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *encoder) encode(ctx context.Context, c *chunk) error {
	blocked := make([]bool, len(c.jobs))
	if e.opt.Suppressed != nil {
		addrs := make([]string, len(c.jobs))
		for i, j := range c.jobs {
			addrs[i] = j.To
		}
		var err error
		if blocked, err = e.opt.Suppressed(ctx, string(e.lane), addrs); err != nil {
			return fmt.Errorf("check suppression list: %w", err)
		}
	}
	b := &streams.Batch{Lane: e.lane, Tally: e.tally, Due: e.due, Checkpoint: strconv.Itoa(c.line)}
	for i, j := range c.jobs {
		j.Lane, j.First = e.lane, e.first
		if blocked[i] {
			b.AddFinal(j, streams.Record{Status: "suppressed", Reason: "suppressed", Line: j.Line, JobID: j.ID})
		} else if err := b.Add(j); err != nil {
			return err
		}
	}
	c.batch = b
	return nil
}
