// Command mxsink is a local capture receiver for demos and benchmarks: an
// SMTP server on loopback (pkg/mxsim without rate or session limits) that
// accepts (or, by pattern, refuses) every message and reports how many
// arrived. It relays nothing; with -dir it writes each message it accepts
// to a file there, so the mail can be looked at.
//
//	mxsink -listen 127.0.0.1:2525 -bounce 'nobody|invalid' -dir /tmp/mail
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-mta/sluice/pkg/mxsim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "address to listen on (loopback)")
	bounce := flag.String("bounce", "", "regexp: recipients matching it get 550 5.1.1 (user unknown)")
	deferRe := flag.String("defer", "", "regexp: recipients matching it get 450 4.2.1 (try later)")
	useTLS := flag.Bool("tls", false, "offer STARTTLS with a self-signed certificate")
	dir := flag.String("dir", "", "write each accepted message to a file in DIR (NNNNNN-RECIPIENT.eml, with Return-Path and X-Mxsink-To headers added)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	cfg := mxsim.Config{Domain: "mx.sink.test"} // no rate or session limit
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			fatal(err)
		}
		cfg.Message = saver(*dir, log)
	}
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

// saver writes each message to a file of its own in dir, numbered in the
// order they arrive.
func saver(dir string, log *slog.Logger) func(from string, to []string, data []byte) error {
	var n atomic.Int64
	unsafe := regexp.MustCompile(`[^A-Za-z0-9@._+-]`)
	return func(from string, to []string, data []byte) error {
		first := "none"
		if len(to) > 0 {
			first = unsafe.ReplaceAllString(to[0], "_")
		}
		name := filepath.Join(dir, fmt.Sprintf("%06d-%s.eml", n.Add(1), first))
		head := fmt.Sprintf("Return-Path: <%s>\r\nX-Mxsink-To: %s\r\n", from, strings.Join(to, ", "))
		if err := os.WriteFile(name, append([]byte(head), data...), 0o644); err != nil {
			log.Error("mxsink: save message", "err", err)
			return fmt.Errorf("save message: %w", err)
		}
		return nil
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
