package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// A receiver in a process of its own, so that a benchmark can tell the
// engine's CPU time (its own process's) from the receiver's: the test
// binary runs again with sinkEnv set, serves an smtptest receiver (go-smtp,
// messages counted and dropped), prints its address, and on the end of its
// stdin prints the number of messages it accepted and exits.
const sinkEnv = "SLUICE_BENCH_SINK"

func init() {
	if os.Getenv(sinkEnv) == "" {
		return
	}
	srv, err := smtptest.Listen("127.0.0.1:0", smtptest.Options{Discard: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(srv.Addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Println(srv.Count())
	os.Exit(0)
}

// sinkProcess is a running receiver process.
type sinkProcess struct {
	Addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startSinkProcess runs a receiver process until stop or the end of the
// benchmark.
func startSinkProcess(tb testing.TB) *sinkProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sinkEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &sinkProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	tb.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	line, err := p.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("receiver process: %v", err)
	}
	p.Addr = strings.TrimSpace(line)
	return p
}

// stop ends the receiver and returns how many messages it accepted and
// the CPU time it used.
func (p *sinkProcess) stop(tb testing.TB) (int, time.Duration) {
	tb.Helper()
	_ = p.stdin.Close()
	line, err := p.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("receiver process: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		tb.Fatalf("receiver process said %q", line)
	}
	if err := p.cmd.Wait(); err != nil {
		tb.Fatalf("receiver process: %v", err)
	}
	return n, p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// receiver is a receiver in a process of its own: its address, and on
// stop how many messages it accepted and the CPU time it used.
type receiver interface {
	addr() string
	stop(tb testing.TB) (int, time.Duration)
}

func (p *sinkProcess) addr() string { return p.Addr }

// postfixSink is Postfix's smtp-sink as the receiver (the one issue 17's
// figures and the raw rate use): PIPELINING, no CHUNKING, so the engine
// sends DATA. Its running counter (-c) says how many messages it took.
type postfixSink struct {
	address string
	cmd     *exec.Cmd
	count   chan int // the last count it printed, once its output ends
}

// startPostfixSink runs smtp-sink on a free loopback port until stop or
// the end of the benchmark, or skips the benchmark without it.
func startPostfixSink(tb testing.TB) *postfixSink {
	tb.Helper()
	bin, err := postfixTool("smtp-sink")
	if err != nil {
		tb.Skip(err)
	}
	address, err := freeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{"-c", address, "1024"}
	if os.Geteuid() == 0 { // smtp-sink refuses to keep root's privileges
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &postfixSink{address: address, cmd: cmd, count: make(chan int, 1)}
	go func() { // "sess=N quit=N mesg=N\r", again at every message
		last := 0
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\r')
			if i := strings.LastIndex(line, "mesg="); i >= 0 {
				if n, err := strconv.Atoi(strings.TrimSpace(line[i+len("mesg="):])); err == nil {
					last = n
				}
			}
			if err != nil {
				p.count <- last
				return
			}
		}
	}()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitListening(address, 5*time.Second); err != nil {
		tb.Fatal(err)
	}
	return p
}

func (p *postfixSink) addr() string { return p.address }

func (p *postfixSink) stop(tb testing.TB) (int, time.Duration) {
	tb.Helper()
	time.Sleep(200 * time.Millisecond) // its counter is printed as it goes
	_ = p.cmd.Process.Kill()
	n := <-p.count
	_ = p.cmd.Wait()
	return n, p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// redisCPU is the CPU time redis-server has used (INFO cpu).
func redisCPU(tb testing.TB, rdb *redis.Client) time.Duration {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
