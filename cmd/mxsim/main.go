// Command mxsim runs a simulated mailbox provider (see pkg/mxsim): an SMTP
// receiver that accepts RATE messages per second over at most CONNS
// sessions and answers the rest the way providers do.
//
//	mxsim -listen 127.0.0.1:2526 -rate 50 -conns 5 -reply microsoft-busy -at 60s=100
//
// Every -stats interval it prints what it accepted, deferred and refused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-mta/sluice/pkg/mxsim"
)

func main() {
	if err := run(os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "mxsim:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mxsim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:2526", "address to listen on")
	rate := fs.Float64("rate", 50, "messages per second accepted (0: no limit)")
	burst := fs.Int("burst", 0, "messages over the rate tolerated at once (default rate/5)")
	conns := fs.Int("conns", 5, "simultaneous sessions (0: no limit)")
	reply := fs.String("reply", "microsoft-busy", "reply over the rate: a preset name or \"451 4.7.500 text\"")
	stage := fs.String("stage", "rcpt", "where the over-rate reply comes: mail, rcpt or data")
	greeting := fs.String("greeting", "", "greeting that refuses a session over -conns (default 421 4.7.0 Too many sessions opened)")
	latency := fs.Duration("latency", 0, "processing time per message, before the reply to the final dot")
	at := fs.String("at", "", "rate changes, e.g. 30s=100,90s=25")
	stats := fs.Duration("stats", time.Second, "print counts every interval (0: never)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mxsim [flags]\n\nPresets for -reply: %s\n\nExample:\n"+
			"  mxsim -listen 127.0.0.1:2526 -rate 50 -conns 5 -reply gmail-4.7.28 -at 60s=100\n\nFlags:\n",
			strings.Join(presetNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	over, ok := mxsim.Presets[*reply]
	if !ok {
		var err error
		if over, err = mxsim.ParseReply(*reply); err != nil {
			return err
		}
	}
	sched, err := parseSchedule(*at)
	if err != nil {
		return err
	}
	srv, err := mxsim.Listen(*listen, mxsim.Config{Rate: *rate, Burst: *burst, MaxConns: *conns, OverRate: over,
		Stage: *stage, Greeting: *greeting, Latency: *latency, Schedule: sched})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("mxsim on %s: %.1f msg/s, %d sessions, over the rate: %s\n", srv.Addr(), *rate, *conns, over)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stats <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(*stats)
	defer t.Stop()
	var last mxsim.Stats
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s := srv.Stats()
		fmt.Printf("%s rate=%.1f accepted=%d (+%d) deferred=%d (+%d) refused=%d (+%d) peak_sessions=%d\n",
			time.Now().Format("15:04:05"), srv.Rate(), s.Accepted, s.Accepted-last.Accepted,
			s.Deferred, s.Deferred-last.Deferred, s.Refused, s.Refused-last.Refused, s.PeakConns)
		last = s
	}
}

// parseSchedule reads "30s=100,90s=25".
func parseSchedule(s string) ([]mxsim.Change, error) {
	var out []mxsim.Change
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, r, ok := strings.Cut(part, "=")
		at, err1 := time.ParseDuration(d)
		rate, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("-at %q: want DURATION=RATE, e.g. 30s=100", part)
		}
		out = append(out, mxsim.Change{At: at, Rate: rate})
	}
	return out, nil
}

func presetNames() []string {
	var n []string
	for k := range mxsim.Presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
