package submission

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/config"
)

// fakeClock is the limits' clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(clk *fakeClock) func(*Server) {
	return func(s *Server) { s.now = clk.now }
}

// dialFrom connects from the loopback address src (127.0.0.2 is another
// client to the server) and does STARTTLS.
func (e *env) dialFrom(t *testing.T, src string) (*smtp.Client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	c, err := smtp.NewClientStartTLS(conn, e.tlsConfig())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// authFrom tries AUTH PLAIN as user with pw, on a new connection from src.
func (e *env) authFrom(t *testing.T, src, user, pw string) error {
	t.Helper()
	c, err := e.dialFrom(t, src)
	if err != nil {
		t.Fatalf("connect from %s: %v", src, err)
	}
	defer c.Close()
	return c.Auth(sasl.NewPlainClient("", user, pw))
}

func wantReply(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode, msg string) {
	t.Helper()
	wantCode(t, what, err, code, enh)
	var se *smtp.SMTPError
	errors.As(err, &se)
	if se.Message != msg {
		t.Fatalf("%s: message %q, want %q", what, se.Message, msg)
	}
}

// More parallel connections from one address than max_connections_per_ip
// are answered 421 at the greeting; another address is not affected, and
// a slot freed is usable again.
func TestConnectionCapPerAddress(t *testing.T) {
	e := start(t, func(c *config.Submission) { c.MaxConnectionsPerIP = 3 })
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		open    []*smtp.Client
		refused []error
	)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second}
			conn, err := d.Dial("tcp", e.addr)
			if err != nil {
				t.Error(err)
				return
			}
			c, err := smtp.NewClientStartTLS(conn, e.tlsConfig())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused = append(refused, err)
				_ = conn.Close()
				return
			}
			open = append(open, c)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range open {
			_ = c.Close()
		}
	})
	if len(open) != 3 || len(refused) != 2 {
		t.Fatalf("%d sessions open, %d refused (%v); want 3 and 2", len(open), len(refused), refused)
	}
	for _, err := range refused {
		wantReply(t, "greeting past the cap", err, 421, smtp.EnhancedCode{4, 7, 0}, "Too many connections from your address")
	}

	// Another address has its own count.
	c, err := e.dialFrom(t, "127.0.0.2")
	if err != nil {
		t.Fatalf("from 127.0.0.2 while 127.0.0.1 is at its cap: %v", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
		t.Fatal(err)
	}

	// Closing one session frees its slot.
	if err := open[0].Quit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		c, err := e.dialFrom(t, "127.0.0.1")
		if err != nil {
			return false
		}
		open = append(open, c)
		return true
	})
}

// The cap is shared by both ports, and on the implicit TLS port the 421
// comes inside TLS.
func TestConnectionCapImplicitTLS(t *testing.T) {
	e := start(t, func(c *config.Submission) { c.MaxConnectionsPerIP = 1 })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeTLS(l) }()
	first := e.dial(t, "") // holds the one slot (STARTTLS port)
	if err := first.Noop(); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.DialTLS(l.Addr().String(), e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantReply(t, "implicit TLS past the cap", c.Hello("client.test"), 421, smtp.EnhancedCode{4, 7, 0}, "Too many connections from your address")
}

// After per_ip failed AUTHs over several connections, the address is
// refused even with the right password until the window has passed;
// another address is not affected.
func TestFailedAuthLocksOutAddressAcrossConnections(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := start(t, func(c *config.Submission) {
		c.AuthFailures = config.AuthFailures{PerIP: 3, PerUser: 100, Window: 10 * time.Minute}
	}, withClock(clk))
	for i := 0; i < 3; i++ {
		wantCode(t, fmt.Sprintf("wrong password %d", i+1), e.authFrom(t, "127.0.0.1", "app", "guess"), 535, smtp.EnhancedCode{5, 7, 8})
		clk.add(time.Minute)
	}
	locked := func(what string, err error) {
		t.Helper()
		wantReply(t, what, err, 454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
	}
	locked("right password from the locked address", e.authFrom(t, "127.0.0.1", "app", password))
	locked("another user from the locked address", e.authFrom(t, "127.0.0.1", "tiny", password))
	if err := e.authFrom(t, "127.0.0.2", "app", password); err != nil {
		t.Fatalf("right password from another address: %v", err)
	}

	// The lock ends a window after the first failure (3 minutes ago).
	clk.add(6*time.Minute + 59*time.Second)
	locked("a second before the window ends", e.authFrom(t, "127.0.0.1", "app", password))
	clk.add(time.Second)
	if err := e.authFrom(t, "127.0.0.1", "app", password); err != nil {
		t.Fatalf("right password once the window has passed: %v", err)
	}
}

// A locked address is refused at the AUTH command, on an open session
// too, and the password is not even looked at (AUTH LOGIN never gets to
// send it).
func TestLockedAddressRefusedBeforePassword(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := start(t, func(c *config.Submission) {
		c.AuthFailures = config.AuthFailures{PerIP: 2, PerUser: 100, Window: time.Hour}
	}, withClock(clk))
	c, err := e.dialFrom(t, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		wantCode(t, "wrong password", c.Auth(sasl.NewPlainClient("", "app", "guess")), 535, smtp.EnhancedCode{5, 7, 8})
	}
	wantReply(t, "AUTH LOGIN on the same session", c.Auth(challengeLogin{}), 454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
}

// A user name with per_user failures from many addresses is refused from
// addresses it has not logged in from, even with the right password; its
// own application's address and other users carry on.
func TestFailedAuthLocksOutUserForNewAddresses(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := start(t, func(c *config.Submission) {
		c.AuthFailures = config.AuthFailures{PerIP: 100, PerUser: 3, Window: 5 * time.Minute}
	}, withClock(clk))
	if err := e.authFrom(t, "127.0.0.1", "app", password); err != nil {
		t.Fatalf("the application's own login: %v", err)
	}
	for i, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		wantCode(t, fmt.Sprintf("guess %d from %s", i+1, src), e.authFrom(t, src, "app", "guess"), 535, smtp.EnhancedCode{5, 7, 8})
	}
	wantReply(t, "right password from a new address", e.authFrom(t, "127.0.0.5", "app", password),
		454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
	wantReply(t, "right password from a guessing address", e.authFrom(t, "127.0.0.2", "app", password),
		454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
	if err := e.authFrom(t, "127.0.0.1", "app", password); err != nil {
		t.Fatalf("right password from the address app logged in from: %v", err)
	}
	if err := e.authFrom(t, "127.0.0.5", "tiny", password); err != nil {
		t.Fatalf("another user from a new address: %v", err)
	}
	clk.add(5 * time.Minute)
	if err := e.authFrom(t, "127.0.0.5", "app", password); err != nil {
		t.Fatalf("right password from a new address after the window: %v", err)
	}
}

// The failure maps never hold more than maxTracked entries, and expired
// entries go first.
func TestAuthLimiterMemoryIsBounded(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := newAuthLimiter(5, 20, time.Minute, clk.now)
	for i := 0; i < maxTracked+50; i++ {
		a.failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("user%d", i))
		clk.add(time.Microsecond)
	}
	if len(a.ips) != maxTracked || len(a.users) != maxTracked {
		t.Fatalf("tracked %d addresses, %d users; want at most %d", len(a.ips), len(a.users), maxTracked)
	}
	if _, ok := a.ips["10.0.0.0"]; ok {
		t.Fatal("the oldest entry was kept")
	}
	if _, ok := a.ips["10.0.39.49"]; !ok { // the newest (maxTracked+49 = 10049)
		t.Fatal("the newest entry was evicted")
	}
	clk.add(time.Minute)
	a.failed("192.0.2.1", "x")
	if len(a.ips) != 1 || len(a.users) != 1 {
		t.Fatalf("after the window: %d addresses, %d users tracked; want 1 and 1", len(a.ips), len(a.users))
	}
	for i := 0; i < maxKnownIPs+5; i++ {
		a.succeeded(fmt.Sprintf("10.0.0.%d", i), "app")
	}
	if n := len(a.known["app"]); n != maxKnownIPs {
		t.Fatalf("%d known addresses for app; want %d", n, maxKnownIPs)
	}
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.2:1234":             "127.0.0.2",
		"[::ffff:192.0.2.7]:25":      "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:587": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:587": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:587":      "2001:db8:1:3::/64",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(a); got != want {
			t.Errorf("clientKey(%s) = %q, want %q", addr, got, want)
		}
	}
}

// Listen binds both ports and reports a port in use at once, leaving
// nothing bound; Run then serves what Listen bound.
func TestListenThenRun(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freeAddr(t)
	e := start(t, func(c *config.Submission) { c.Listen, c.ListenTLS = free, busy.Addr().String() })
	err = e.srv.Listen()
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen with listen_tls in use: %v; want EADDRINUSE", err)
	}
	want := "submission: listen on " + busy.Addr().String() + ": "
	if len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Fatalf("error %q does not start %q", err, want)
	}
	l, err := net.Listen("tcp", free) // the STARTTLS port was let go
	if err != nil {
		t.Fatalf("listen address still bound after the failed Listen: %v", err)
	}
	_ = l.Close()

	e = start(t, func(c *config.Submission) { c.Listen, c.ListenTLS = freeAddr(t), freeAddr(t) })
	if err := e.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := e.srv.Addrs()
	if len(addrs) != 2 || addrs[0].String() != e.cfg.Listen || addrs[1].String() != e.cfg.ListenTLS {
		t.Fatalf("Addrs = %v, want [%s %s]", addrs, e.cfg.Listen, e.cfg.ListenTLS)
	}
	// Bound before Run: a client can connect (the kernel queues it) and is
	// served once Run starts.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	c, err := smtp.DialStartTLS(e.cfg.Listen, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	cancel()
	waitReturn(t, "Run", done)
}
