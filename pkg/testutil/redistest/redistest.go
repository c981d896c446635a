// Package redistest starts a real redis-server for a test package: on a
// free loopback port, in a temporary directory, persistence off, stopped
// when the package's tests end.
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
//
// Tests share the one server; each takes its own key prefix from Prefix so
// they never see each other's keys.
//
// A test that needs a server of its own, with an append-only file, that
// it can stop and start again (a Redis outage), uses NewServer.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	addr string
	seq  atomic.Int64
)

// Main starts redis-server, runs the package's tests and stops the server.
// It fails the run (exit 2) when redis-server is missing: these tests are
// about Redis and must not pass without one (`make test` installs it).
func Main(m *testing.M) int {
	stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redistest:", err)
		return 2
	}
	code := m.Run()
	stop()
	return code
}

// Addr is the running server's host:port.
func Addr() string { return addr }

// URL is the running server's redis:// URL.
func URL() string { return "redis://" + addr }

// Client returns a client of the package's server, closed at test end.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	if addr == "" {
		t.Fatal("redistest: server not started; call redistest.Main from TestMain")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Prefix returns a key prefix unique to this test.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("t%d%s", seq.Add(1), unsafe.ReplaceAllString(t.Name(), ""))
}

func start() (func(), error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd, err := run(addr, dir, "--save", "", "--appendonly", "no")
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = os.RemoveAll(dir)
	}, nil
}

// run starts redis-server on addr with its files in dir and waits until
// it answers.
func run(addr, dir string, extra ...string) (*exec.Cmd, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH (apt-get install redis-server): %w", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--port", port, "--bind", host, "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log")}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return cmd, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			return nil, fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// freePorts returns n different free loopback ports (each held until all
// are found, so none is handed out twice).
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
