// Command mxsink is a local capture receiver for demos and benchmarks: an
// SMTP server on loopback (pkg/mxsim without rate or session limits) that
// accepts (or, by pattern, refuses) every message and reports how many
// arrived. It keeps and relays nothing.
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

	"github.com/sluice-mta/sluice/pkg/mxsim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "address to listen on (loopback)")
	bounce := flag.String("bounce", "", "regexp: recipients matching it get 550 5.1.1 (user unknown)")
	deferRe := flag.String("defer", "", "regexp: recipients matching it get 450 4.2.1 (try later)")
	useTLS := flag.Bool("tls", false, "offer STARTTLS with a self-signed certificate")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	cfg := mxsim.Config{Domain: "mx.sink.test"} // no rate or session limit
	if *bounce != "" || *deferRe != "" {
		b, d := compile(*bounce), compile(*deferRe)
		cfg.Rcpt = func(to string) *mxsim.Reply {
			switch {
			case b != nil && b.MatchString(to):
				return &mxsim.Reply{Code: 550, Enhanced: "5.1.1", Text: "The email account that you tried to reach does not exist"}
			case d != nil && d.MatchString(to):
				return &mxsim.Reply{Code: 450, Enhanced: "4.2.1", Text: "The user you are trying to contact is receiving mail at a rate that prevents additional messages"}
			}
			return nil
		}
	}
	if *useTLS {
		tlsCfg, err := mxsim.SelfSigned()
		if err != nil {
			fatal(err)
		}
		cfg.TLS = tlsCfg
	}
	srv, err := mxsim.Listen(*listen, cfg)
	if err != nil {
		fatal(err)
	}
	log.Info("mxsink listening", "addr", srv.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var last mxsim.Stats
	for {
		select {
		case <-ctx.Done():
			srv.Close()
			s := srv.Stats()
			log.Info("mxsink stopped", "accepted", s.Accepted, "refused", s.Scripted, "sessions", s.Sessions)
			return
		case <-t.C:
			if s := srv.Stats(); s != last {
				log.Info("mxsink", "accepted", s.Accepted, "refused", s.Scripted, "sessions", s.Sessions)
				last = s
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
