package faulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// engineBin is the engine binary, built once by TestMain.
var engineBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	engineBin = filepath.Join(dir, "engine")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// Without -race: the engine is the system under test, not the harness.
	out, err := exec.Command(goBin, "build", "-o", engineBin, "github.com/sluice-mta/sluice/cmd/engine").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build engine: %v\n%s", err, out)
		return 2
	}
	return m.Run()
}

// domain is every test recipient's domain; all routes go to the receiver.
const domain = "fault.test"

// env is one test's world: its own redis-server (AOF), receiver and
// campaign; engines come and go.
type env struct {
	t     *testing.T
	redis *redistest.Server
	rdb   *redis.Client
	rx    *receiver
	ks    keyspace.Space
	q     *streams.Queue // only to name the lane streams
	st    *store.Store
	dir   string
	http  map[string]string // consumer → its engine's HTTP listener
	id    string            // the campaign
	n     int               // its recipients
}

func newEnv(t *testing.T, n int) *env {
	t.Helper()
	e := &env{t: t, redis: redistest.NewServer(t, redistest.Options{AOF: true}), dir: t.TempDir(), id: "fault", n: n}
	e.rdb = e.redis.Client(t)
	e.ks = keyspace.Space("fault")
	e.q = streams.New(e.rdb, e.ks, "")
	e.st = store.New(e.rdb, e.ks)
	e.rx = newReceiver(t)
	return e
}

// launch enqueues the campaign's n recipients user%05d@fault.test.
func (e *env) launch() {
	e.t.Helper()
	path := enginetest.Campaign(e.t, e.dir, e.id, e.n, domain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := launch.Launch(ctx, e.rdb, e.ks, path, launch.Options{})
	if err != nil {
		e.t.Fatalf("launch: %v", err)
	}
	if res.Enqueued != e.n {
		e.t.Fatalf("launch enqueued %d of %d", res.Enqueued, e.n)
	}
}

// conf is what differs between the tests' engine configurations.
type conf struct {
	consumer    string
	workers     int
	conns       int           // throttle max_connections (default: workers)
	reclaimIdle time.Duration // default 15m
	// connect/command/data timeouts; default 5s each.
	connect, command, data time.Duration
}

// config writes an engine configuration file and returns its path.
func (e *env) config(c conf) string {
	e.t.Helper()
	if c.conns == 0 {
		c.conns = c.workers
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.reclaimIdle, 15*time.Minute)
	def(&c.connect, 5*time.Second)
	def(&c.command, 5*time.Second)
	def(&c.data, 5*time.Second)
	yaml := fmt.Sprintf(`hostname: mta.sluice.test
redis: {url: %q, prefix: %q}
http: {listen: %q}
routes: [{match: "*", host: %q}]
delivery:
  workers: %d
  consumer: %s
  reclaim_idle: %s
  connect_timeout: %s
  command_timeout: %s
  data_timeout: %s
throttle:
  default: {start_rate: 100000, max_rate: 100000, burst: 1000, max_connections: %d, max_messages_per_connection: 1000}
lanes:
  marketing: {retry: [2s]}
`, e.redis.URL(), string(e.ks), e.httpAddr(c.consumer), e.rx.Addr, c.workers, c.consumer,
		c.reclaimIdle, c.connect, c.command, c.data, c.conns)
	path := filepath.Join(e.dir, c.consumer+".yaml")
	return enginetest.Write(e.t, path, yaml)
}

// httpAddr is the HTTP listener of consumer's engine.
func (e *env) httpAddr(consumer string) string {
	if e.http == nil {
		e.http = map[string]string{}
	}
	if e.http[consumer] == "" {
		e.http[consumer] = freeAddr(e.t)
	}
	return e.http[consumer]
}

// healthz returns the status code of consumer's engine's /healthz.
func (e *env) healthz(consumer string) int {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + e.httpAddr(consumer) + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one run of the engine binary.
type proc struct {
	t    *testing.T
	name string
	log  string // its stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's, once done is closed
}

var runs atomic.Int64

// startEngine runs the engine binary with the configuration at cfg. Its
// log is printed (tail) when the test fails; it is killed at test end.
func (e *env) startEngine(cfg, name string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, name: name, done: make(chan struct{}),
		log: filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", name, runs.Add(1)))}
	f, err := os.Create(p.log)
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd = exec.Command(engineBin, "-config", cfg)
	p.cmd.Env = append(os.Environ(), "REDIS_URL=", "SLUICE_UNSUBSCRIBE_SECRET=")
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("start engine %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			e.t.Logf("engine %s (%s), last lines:\n%s", name, filepath.Base(p.log), tail(p.log, 25))
		}
	})
	return p
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill is kill -9, waited for.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to within for the exit; it returns the
// exit code (-1: killed by a signal, or killed after within).
func (p *proc) term(within time.Duration) (code int, took time.Duration) {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Errorf("engine %s still running %v after SIGTERM; killed", p.name, within)
		p.kill()
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), time.Since(start)
	}
	return 0, time.Since(start)
}

var (
	logTime = regexp.MustCompile(`^time=\S+ `)
	logJob  = regexp.MustCompile(` job=\S+`)
)

// tail returns the last n lines of an engine log, each run of lines that
// differ only in time and job folded into one.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	prev, same := "", 0
	flush := func() {
		if same > 1 {
			out = append(out, fmt.Sprintf("        (and %d more like it)", same-1))
		}
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		key := logJob.ReplaceAllString(logTime.ReplaceAllString(l, ""), "")
		if key == prev {
			same++
			continue
		}
		flush()
		out = append(out, l)
		prev, same = key, 1
	}
	flush()
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// receiver is the far end: it counts, per recipient, every copy it
// accepted (answered 250 to), after an adjustable delay per message.
// While held, DATA waits until released and is then refused with 451,
// so nothing is counted.
type receiver struct {
	*smtptest.Server
	delay atomic.Int64 // time.Duration before each reply to DATA

	mu   sync.Mutex
	got  map[string]int
	hold chan struct{} // non-nil: hold every DATA until closed
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}}
	r.Server = smtptest.Start(t, smtptest.Options{Discard: true, Quiet: true, Data: r.data})
	return r
}

func (r *receiver) data(_ string, to []string, _ []byte) error {
	time.Sleep(time.Duration(r.delay.Load()))
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		<-hold
		return smtptest.Reply(451, "4.3.0", "held, try again")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range to {
		r.got[a]++
	}
	return nil
}

// holdAll makes every DATA wait (until release) and then fail.
func (r *receiver) holdAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold == nil {
		r.hold = make(chan struct{})
	}
}

// release lets held DATA commands fail and new ones be accepted again.
func (r *receiver) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold != nil {
		close(r.hold)
		r.hold = nil
	}
}

// counts returns a copy of the copies received per recipient.
func (r *receiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]int, len(r.got))
	for a, n := range r.got {
		m[a] = n
	}
	return m
}

// total is the number of copies received.
func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.got {
		n += c
	}
	return n
}

// tally compares what arrived with the campaign's n recipients.
type tally struct {
	lost, duplicates, maxCopies int
	over                        []string // recipients above their allowance, as "addr×copies"
}

// check counts lost recipients and extra copies; allow(addr) is how many
// copies an address may have received (1 unless a fault excuses more).
func (e *env) check(allow func(addr string) int) tally {
	got := e.rx.counts()
	var t tally
	for i := 0; i < e.n; i++ {
		a := fmt.Sprintf("user%05d@%s", i, domain)
		c := got[a]
		switch {
		case c == 0:
			t.lost++
		case c > 1:
			t.duplicates += c - 1
		}
		t.maxCopies = max(t.maxCopies, c)
		if c > allow(a) && len(t.over) < 10 {
			t.over = append(t.over, fmt.Sprintf("%s×%d", a, c))
		}
	}
	return t
}

func one(string) int { return 1 }

// held lists every stream that holds jobs: both lanes of every shard and
// every line.
func (e *env) held(ctx context.Context) ([]string, error) {
	var out []string
	for sh := 0; sh < keyspace.Shards; sh++ {
		for _, l := range streams.Lanes {
			out = append(out, e.q.Stream(sh, l))
		}
	}
	err := e.q.Lines(ctx, func(l streams.Line) error {
		out = append(out, e.q.LineStream(l))
		return nil
	})
	return out, err
}

// pending returns the recipients of the jobs pending in both lanes and
// every line, held by consumer (all consumers when empty).
func (e *env) pending(consumer string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	streamKeys, err := e.held(ctx)
	if err != nil {
		return nil, err
	}
	for _, stream := range streamKeys {
		ps, err := e.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: streams.Group,
			Start: "-", End: "+", Count: 1 << 20, Consumer: consumer}).Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") {
				continue
			}
			return nil, fmt.Errorf("xpending %s: %w", stream, err)
		}
		pipe := e.rdb.Pipeline()
		cmds := make([]*redis.XMessageSliceCmd, len(ps))
		for i, p := range ps {
			cmds[i] = pipe.XRange(ctx, stream, p.ID, p.ID)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read pending jobs: %w", err)
		}
		for _, c := range cmds {
			for _, m := range c.Val() {
				raws := []string{}
				if pack, ok := m.Values[streams.PackField].(string); ok {
					raws = strings.Split(strings.TrimSuffix(pack, "\n"), "\n") // a launch's pack in a lane
				} else {
					raw, _ := m.Values[streams.JobField].(string)
					raws = append(raws, raw)
				}
				for _, raw := range raws {
					var j streams.Job
					if err := json.Unmarshal([]byte(raw), &j); err != nil {
						return nil, fmt.Errorf("pending entry %s: %w", m.ID, err)
					}
					out = append(out, j.To)
				}
			}
		}
	}
	return out, nil
}

// pendingCount is how many entries consumer holds in both lanes and every
// line (XPENDING summaries, cheap enough to poll): jobs, but for a
// launch's pack in a lane, which counts once.
func (e *env) pendingCount(consumer string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int64
	streamKeys, err := e.held(ctx)
	if err != nil {
		return 0, err
	}
	for _, stream := range streamKeys {
		p, err := e.rdb.XPending(ctx, stream, streams.Group).Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil) {
				continue
			}
			return 0, fmt.Errorf("xpending %s: %w", stream, err)
		}
		n += p.Consumers[consumer]
	}
	return n, nil
}

// status reads the campaign's counters.
func (e *env) status() store.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.st.Status(ctx, e.id)
	if err != nil {
		e.t.Fatalf("campaign status: %v", err)
	}
	return s
}

// waitFinished polls until the campaign is finished or within passes,
// and reports which.
func (e *env) waitFinished(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s, err := e.st.Status(context.Background(), e.id); err == nil && s.State == store.StateFinished {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// waitFor polls cond every 20 ms until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// settle waits until the receiver has taken no message for quiet (the
// last copies of a finished campaign, or of a dead engine's sessions, are
// counted), at most within.
func (e *env) settle(quiet, within time.Duration) {
	last, since := e.rx.total(), time.Now()
	waitFor(within, func() bool {
		if n := e.rx.total(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet
	})
}

// exact checks the final counters: every recipient delivered, counted
// once, nothing queued, nothing pending.
func (e *env) exact() {
	e.t.Helper()
	s := e.status()
	if s.Total != int64(e.n) || s.Delivered != int64(e.n) || s.Queued != 0 ||
		s.Deferred+s.Bounced+s.Failed+s.Suppressed != 0 {
		e.t.Errorf("counters: want total=delivered=%d and nothing else, got %+v", e.n, s)
	}
	p, err := e.pending("")
	if err != nil {
		e.t.Error(err)
	} else if len(p) != 0 {
		e.t.Errorf("%d jobs still pending at the end", len(p))
	}
}
