package submission

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Abuse limits. Both are kept in memory by each engine process: several
// engines each count on their own, and a restart forgets.

var (
	errAuthLocked = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	// tooManyConns is written straight to the socket, before go-smtp sees
	// the connection, in place of the 220 greeting.
	tooManyConns = "421 4.7.0 Too many connections from your address\r\n"
)

// maxTracked bounds each failure map; past it the oldest entry goes.
const maxTracked = 10000

// maxKnownIPs bounds the addresses remembered per user.
const maxKnownIPs = 16

// refuseTimeout bounds writing the 421 to a refused connection.
const refuseTimeout = 10 * time.Second

// clientKey is what the limits count by: the IPv4 address, or an IPv6
// address's /64 (one host or site commonly holds a whole /64).
func clientKey(a net.Addr) string {
	var ip net.IP
	switch t := a.(type) {
	case *net.TCPAddr:
		ip = t.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip = net.ParseIP(host)
	}
	if ip == nil {
		return a.String()
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// connCounter counts open connections per client.
type connCounter struct {
	max int
	mu  sync.Mutex
	n   map[string]int // only clients with open connections
}

func (c *connCounter) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

func (c *connCounter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// capListener hands go-smtp only connections within their client's cap;
// the others get refuse, in a goroutine of their own.
type capListener struct {
	net.Listener
	conns  *connCounter
	refuse func(net.Conn)
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		if !l.conns.acquire(key) {
			go l.refuse(c)
			continue
		}
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.conns.release(key) })}, nil
	}
}

// countedConn gives its client's slot back when closed (also when closed
// through a tls.Conn wrapping it).
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// refusePlain answers a connection over the cap on the STARTTLS port.
func refusePlain(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	_, _ = c.Write([]byte(tooManyConns))
}

// refuseTLS answers one on the implicit TLS port, inside TLS.
func refuseTLS(cfg *tls.Config) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Server(c, cfg)
		defer tc.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if tc.Handshake() == nil {
			_, _ = tc.Write([]byte(tooManyConns))
		}
	}
}

// failures counts failed AUTHs for one key since the first of them.
type failures struct {
	n     int
	since time.Time
}

// authLimiter counts failed AUTHs per client address and per user name
// across connections.
//
// An address with PerIP failures within Window is refused every further
// attempt until Window has passed since its first failure. A user name
// with PerUser failures (from any addresses) is refused likewise, except
// from addresses it has logged in from successfully before: locking
// every address would let anyone who knows an account's name keep its
// own application out. The per-user limit is higher, so a single address
// meets its own limit first.
type authLimiter struct {
	perIP, perUser int
	window         time.Duration
	now            func() time.Time

	mu    sync.Mutex
	ips   map[string]*failures
	users map[string]*failures
	known map[string]map[string]time.Time // user → addresses it logged in from → when
}

func newAuthLimiter(perIP, perUser int, window time.Duration, now func() time.Time) *authLimiter {
	return &authLimiter{perIP: perIP, perUser: perUser, window: window, now: now,
		ips: map[string]*failures{}, users: map[string]*failures{}, known: map[string]map[string]time.Time{}}
}

// count is m[key]'s failures within the window (expired entries go).
func (a *authLimiter) count(m map[string]*failures, key string, now time.Time) int {
	f := m[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.since) >= a.window {
		delete(m, key)
		return 0
	}
	return f.n
}

// ipLocked reports whether the address may not try at all.
func (a *authLimiter) ipLocked(ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count(a.ips, ip, a.now()) >= a.perIP
}

// userLocked reports whether ip may not try the user name.
func (a *authLimiter) userLocked(user, ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.count(a.users, user, a.now()) < a.perUser {
		return false
	}
	_, known := a.known[user][ip]
	return !known
}

// failed records a failure; it reports whether that locked the address
// or the user name.
func (a *authLimiter) failed(ip, user string) (ipNowLocked, userNowLocked bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	return a.add(a.ips, ip, now) == a.perIP, a.add(a.users, user, now) == a.perUser
}

func (a *authLimiter) add(m map[string]*failures, key string, now time.Time) int {
	if a.count(m, key, now) == 0 {
		if len(m) >= maxTracked {
			a.evict(m, now)
		}
		m[key] = &failures{since: now}
	}
	f := m[key]
	f.n++
	return f.n
}

// evict drops expired entries, or else the oldest one.
func (a *authLimiter) evict(m map[string]*failures, now time.Time) {
	oldest, at := "", now
	for k, f := range m {
		if now.Sub(f.since) >= a.window {
			delete(m, k)
		} else if !f.since.After(at) {
			oldest, at = k, f.since
		}
	}
	if len(m) >= maxTracked {
		delete(m, oldest)
	}
}

// succeeded remembers that user logged in from ip (users are configured,
// so this map is bounded by their number times maxKnownIPs).
func (a *authLimiter) succeeded(ip, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ips := a.known[user]
	if ips == nil {
		ips = map[string]time.Time{}
		a.known[user] = ips
	}
	if _, ok := ips[ip]; !ok && len(ips) >= maxKnownIPs {
		oldest, at := "", time.Time{}
		for k, t := range ips {
			if oldest == "" || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(ips, oldest)
	}
	ips[ip] = a.now()
}
