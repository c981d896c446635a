package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a server of a test's own (NewServer).
type Options struct {
	// AOF turns the append-only file on (appendfsync everysec), so the
	// data survives Stop and Start.
	AOF bool
	// Cluster makes the server a Redis Cluster node (cluster-enabled, its
	// bus on a second free port, nodes.conf in Dir); see clustertest.
	Cluster bool
	// Args are more redis-server arguments ("--cluster-node-timeout", "1000").
	Args []string
}

// Server is a redis-server of one test's own, on a free loopback port,
// that the test can stop and start again on the same port and directory
// (a Redis outage). It is stopped when the test ends.
type Server struct {
	addr, dir string
	extra     []string
	cmd       *exec.Cmd
}

// NewServer starts a server for t, or fails the test.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), dir: dir,
		extra: []string{"--save", "", "--appendonly", "no"}}
	if o.AOF {
		s.extra = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "everysec"}
	}
	if o.Cluster {
		s.extra = append(s.extra, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", "nodes.conf")
	}
	s.extra = append(s.extra, o.Args...)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Log(err)
		}
	})
	return s
}

// Addr is the server's host:port; it stays the same across restarts.
func (s *Server) Addr() string { return s.addr }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.addr }

// Dir holds the server's files (AOF, redis.log).
func (s *Server) Dir() string { return s.dir }

// Client returns a client of the server, closed at test end. It
// reconnects by itself after a restart.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts the stopped server again, on the same port and directory,
// and waits until it answers (after loading its AOF).
func (s *Server) Start() error {
	if s.cmd != nil {
		return errors.New("redistest: server already running")
	}
	cmd, err := run(s.addr, s.dir, s.extra...)
	if err != nil {
		return err
	}
	s.cmd = cmd
	return nil
}

// Stop shuts the server down as an operator would (SIGTERM: redis-server
// flushes its AOF and exits) and waits for it; it is killed after 10 s.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("redistest: stop redis-server: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("redistest: redis-server on %s exited: %w", s.addr, err)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		return fmt.Errorf("redistest: redis-server on %s did not stop in 10s; killed\n%s", s.addr, log)
	}
}

// Kill ends the server as a crash would (SIGKILL: nothing flushed) and
// waits for it. Start brings it back.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	if err := cmd.Process.Kill(); err != nil {
		return fmt.Errorf("redistest: kill redis-server: %w", err)
	}
	_ = cmd.Wait() // "signal: killed"
	return nil
}
