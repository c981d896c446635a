package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// pack is how many jobs of a shard go in one lane entry (streams.Batch.Pack):
// Redis's work per row at launch was mostly its own XADD and feeding it to
// the AOF; a pack of 64 spreads one over 64 rows, and an engine's router
// reads about one pack a shard at a time (it reads 64 jobs a shard).
const pack = 64

// oldReadersLive is how recently an engine must have beaten to count as
// running when a launch looks for engines that cannot read packs.
const oldReadersLive = time.Minute

// writers is how many goroutines write the batches, each the part of
// every batch in the shards it owns (shard mod writers): while Redis runs
// one writer's scripts, the other's are on their way or queued, so Redis
// does not wait for campaignctl between batches (with one writer it
// idled about a third of a launch). A shard's parts are written by one
// writer, each once the one before is answered, so a shard's checkpoint
// stays exact whatever the other writer does.
const writers = 2

// chunk is a run of the list's rows on its way to Redis: the jobs of a
// whole batch read, or one writer's part of it encoded (the jobs' lines
// only: the jobs themselves are garbage once encoded).
type chunk struct {
	jobs    []*streams.Job
	fresh   []bool // per job: its address was not read before (seen)
	blocked []bool // per job: on the suppression list (nil: none is)
	line    int    // the last row's line: the checkpoint once written
	batch   *streams.Batch
	lines   []int // the part's rows' lines, in the batch's order
}

// enqueue streams the recipients into the lane in batches, each written
// atomically per shard with that shard's checkpoint. A resumed launch
// skips a row at or before its shard's checkpoint: every such row was
// written (batches reach a shard in file order), and none after it.
//
// The work is passed along goroutines, batch by batch: one reads and
// parses the list, one checks a batch against the suppression list (a
// round trip, which waits behind the writers' batches in Redis: on its
// own, so the encoding goes on meanwhile), one encodes its jobs and
// splits it between the writers, and the writers write their parts (a
// part's shards' scripts in one round trip), each waiting for the reply
// before its next part, which keeps every shard's batches in file order.
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
	e := &encoder{lane: lane, tally: st.Tally(spec.ID), first: time.Now().UnixMilli(), opt: opt, pack: pack}
	lacking, err := q.Lacking(ctx, oldReadersLive, streams.ReadsPacks, streams.ReadsRuns)
	if err != nil {
		return err
	}
	if len(lacking[0]) > 0 {
		e.pack, res.OldEngines = 0, lacking[0] // one entry a job, which they read
	}
	e.runs = len(lacking[1]) == 0 // else the events as JSON arrays, which they read
	for _, name := range lacking[1] {
		if !slices.Contains(res.OldEngines, name) {
			res.OldEngines = append(res.OldEngines, name)
		}
	}
	if spec.SendAt.After(time.Now()) {
		// Scheduled: the jobs wait in the delayed set, durably, and the
		// engines' mover releases them at send_at — or as soon as an
		// engine runs again if none was running then.
		e.due = spec.SendAt
		e.first = spec.SendAt.UnixMilli() // max age counts from the send time
	}
	// ctx stops the reader and the encoder; stop the writers, after the
	// write each has on its way (cancelling one midway would leave its
	// outcome unknown, and the counts with it).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	parsed := make(chan chunk)
	var parts [writers]chan chunk
	for w := range parts {
		parts[w] = make(chan chunk, 1)
	}
	checked := make(chan chunk, 1)
	readErr, checkErr, encErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() {
		defer close(parsed)
		readErr <- read(ctx, r, spec, checkpoints, res.unrenderable, opt.BatchSize, newSeen(res.Valid), parsed)
	}()
	go func() {
		defer close(checked)
		checkErr <- e.check(ctx, parsed, checked)
	}()
	go func() {
		defer func() {
			for _, p := range parts {
				close(p)
			}
		}()
		encErr <- e.run(ctx, checked, parts, stop)
	}()
	wr := &written{opt: opt, res: res}
	var wg sync.WaitGroup
	werrs := make([]error, writers)
	var once sync.Once
	for w := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if werrs[w] = wr.write(ctx, q, w, checkpoints, parts[w], stop); werrs[w] != nil {
				once.Do(func() { close(stop) })
			}
		}()
	}
	wg.Wait()
	// On an error, stop the others and wait for them: the list is closed
	// only once nobody reads it. The first stage to fail says why.
	cancel()
	for _, p := range parts {
		for range p {
		}
	}
	eerr, cerr, rerr := <-encErr, <-checkErr, <-readErr
	wr.done()
	for _, err := range append(werrs, eerr, cerr, rerr) {
		if err != nil {
			return err
		}
	}
	return nil
}

// written gathers what the writers did into the Result.
type written struct {
	opt Options
	res *Result

	mu      sync.Mutex
	parts   int            // parts written, all writers
	line    [writers]int   // the last line each writer is past
	dupLine [writers][]int // each writer's first MaxReported duplicates' lines
}

// write enqueues writer w's parts in turn, each once the one before is
// written, until in is closed or stop. since are the shards' checkpoints
// when the launch began; each part must find its shards where this
// writer left them (streams.Batch.Since).
func (wr *written) write(ctx context.Context, q *streams.Queue, w int, since [keyspace.Shards]int, in <-chan chunk, stop <-chan struct{}) error {
	for c := range in {
		select {
		case <-stop:
			return nil // another writer failed; its error says why
		default:
		}
		if c.batch.Len() > 0 {
			c.batch.Since = since
			out, dupAt, err := q.EnqueueDuplicates(context.WithoutCancel(ctx), c.batch)
			since = c.batch.Since // moved for the shards written, even when another failed
			if err != nil {
				return err
			}
			if err := wr.add(w, c, out, dupAt); err != nil {
				return err
			}
		}
		wr.mu.Lock()
		wr.line[w] = c.line
		wr.mu.Unlock()
	}
	return nil
}

// add counts one part written and reports the progress.
func (wr *written) add(w int, c chunk, out streams.BatchResult, dupAt []int) error {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	res := wr.res
	res.Enqueued += out.Added
	res.Suppressed += out.Final
	res.Duplicates += out.Duplicates
	for _, i := range dupAt {
		if len(wr.dupLine[w]) < MaxReported && i >= 0 && i < len(c.lines) {
			wr.dupLine[w] = append(wr.dupLine[w], c.lines[i])
		}
	}
	wr.parts++
	wr.line[w] = c.line
	if wr.opt.Progress != nil {
		// The line every writer is past (one may be a part ahead).
		line := c.line
		for _, l := range wr.line {
			line = min(line, l)
		}
		wr.opt.Progress(Progress{Line: line, Enqueued: res.Enqueued, Suppressed: res.Suppressed, Duplicates: res.Duplicates, Invalid: res.InvalidN})
	}
	if afterBatch != nil {
		return afterBatch(wr.parts)
	}
	return nil
}

// done puts the duplicates' lines in the Result: the first MaxReported
// in file order (each writer kept its first MaxReported).
func (wr *written) done() {
	for _, l := range wr.dupLine {
		wr.res.DuplicateLines = append(wr.res.DuplicateLines, l...)
	}
	slices.Sort(wr.res.DuplicateLines)
	if len(wr.res.DuplicateLines) > MaxReported {
		wr.res.DuplicateLines = wr.res.DuplicateLines[:MaxReported]
	}
}

// read parses the list into chunks of jobs, skipping the rows validate
// reported and those a resumed launch wrote before.
func read(ctx context.Context, r *campaign.Reader, spec *campaign.Spec, checkpoints [keyspace.Shards]int, skip map[int]bool, fixed int, seen *seen, out chan<- chunk) error {
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
		maybe := seen.add(strings.ToLower(rc.Email)) // the record field
		if rc.Line <= checkpoints[keyspace.ShardOf(rc.Email)] || skip[rc.Line] {
			continue // before its shard's checkpoint, or reported by validate
		}
		c.line = rc.Line
		c.jobs = append(c.jobs, &streams.Job{
			ID: spec.ID + "/" + strconv.Itoa(rc.Line), Campaign: spec.ID, To: rc.Email,
			Fields: rc.Fields, Line: rc.Line,
		})
		c.fresh = append(c.fresh, !maybe)
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
	pack  int  // jobs per lane entry (streams.Batch.Pack)
	runs  bool // queued events as runs (streams.Batch.Runs)
}

// check looks the chunks' recipients up in the suppression list (one
// round trip a chunk) and passes them on.
func (e *encoder) check(ctx context.Context, in <-chan chunk, out chan<- chunk) error {
	for c := range in {
		if e.opt.Suppressed != nil {
			addrs := make([]string, len(c.jobs))
			for i, j := range c.jobs {
				addrs[i] = j.To
			}
			var err error
			if c.blocked, err = e.opt.Suppressed(ctx, string(e.lane), addrs); err != nil {
				return fmt.Errorf("check suppression list: %w", err)
			}
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// run encodes the chunks and hands each writer its part of every one (an
// empty part too: the writer is then past its line).
func (e *encoder) run(ctx context.Context, in <-chan chunk, out [writers]chan chunk, stop <-chan struct{}) error {
	for c := range in {
		parts, err := e.encode(c)
		if err != nil {
			return err
		}
		for w, p := range parts {
			select {
			case out[w] <- p:
			case <-stop:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// encode splits c between the writers: each part's encoded batch.
func (e *encoder) encode(c chunk) ([writers]chunk, error) {
	var parts [writers]chunk
	room := len(c.jobs)/writers + len(c.jobs)/8 // a writer's share, and some
	for w := range parts {
		parts[w] = chunk{line: c.line, lines: make([]int, 0, room),
			batch: &streams.Batch{Lane: e.lane, Tally: e.tally, Due: e.due, Checkpoint: strconv.Itoa(c.line), Pack: e.pack, Runs: e.runs}}
		parts[w].batch.Grow(room)
	}
	for i, j := range c.jobs {
		j.Lane, j.First = e.lane, e.first
		p := &parts[j.Shard()%writers]
		p.lines = append(p.lines, j.Line)
		var err error
		switch {
		case c.blocked != nil && c.blocked[i]:
			p.batch.AddFinal(j, streams.Record{Status: "suppressed", Reason: "suppressed", Line: j.Line, JobID: j.ID})
		case c.fresh[i]:
			err = p.batch.AddNew(j)
		default:
			err = p.batch.Add(j)
		}
		if err != nil {
			return parts, err
		}
	}
	return parts, nil
}
