// Command mxsink is a local capture receiver for demos and benchmarks: an
// SMTP server on loopback that accepts (or, by pattern, refuses) every
// message and reports how many arrived. It never relays anything.
//
//	mxsink -listen 127.0.0.1:2525 -bounce 'nobody|invalid'
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "address to listen on (loopback)")
	bounce := flag.String("bounce", "", "regexp: recipients matching it get 550 5.1.1 (user unknown)")
	deferRe := flag.String("defer", "", "regexp: recipients matching it get 450 4.2.1 (try later)")
	useTLS := flag.Bool("tls", false, "offer STARTTLS with a self-signed certificate")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	opts := smtptest.Options{}
	if *bounce != "" || *deferRe != "" {
		b, d := compile(*bounce), compile(*deferRe)
		opts.Rcpt = func(to string) error {
			switch {
			case b != nil && b.MatchString(to):
				return smtptest.Reply(550, "5.1.1", "The email account that you tried to reach does not exist")
			case d != nil && d.MatchString(to):
				return smtptest.Reply(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages")
			}
			return nil
		}
	}
	if *useTLS {
		cfg, err := smtptest.NewSelfSigned()
		if err != nil {
			fatal(err)
		}
		opts.TLS = cfg
	}
	srv, err := smtptest.Listen(*listen, opts)
	if err != nil {
		fatal(err)
	}
	log.Info("mxsink listening", "addr", srv.Addr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			srv.Close()
			log.Info("mxsink stopped", "accepted", srv.Count(), "sessions", srv.Conns())
			return
		case <-t.C:
			if n := srv.Count(); n != last {
				log.Info("mxsink", "accepted", n, "sessions", srv.Conns())
				last = n
			}
		}
	}
}

func compile(expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		fatal(fmt.Errorf("bad pattern %q: %w", expr, err))
	}
	return re
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mxsink:", err)
	os.Exit(1)
}
