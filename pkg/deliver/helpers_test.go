package deliver

import (
	"net"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

var (
	testEnv = Envelope{From: "b@sluice.test", To: "a@example.test"}
	testMsg = []byte("From: b@sluice.test\r\nTo: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n")
)

// local is a destination whose one host is srv.
func local(srv *smtptest.Server) Destination {
	return Destination{Domain: "example.test", Hosts: []Host{{Name: "127.0.0.1", Port: srv.Port()}}}
}

// closedPort is a loopback port with nothing listening.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

// silentListener accepts connections and never says a word.
func silentListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}
