package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// errCheckFailed is run's answer to -check when the configuration has
// problems (already printed); main exits 2 on it.
var errCheckFailed = errors.New("configuration check failed")

// check is engine -check: it parses the configuration and reads every
// file it names (DKIM keys are parsed, the TLS pair loaded, the providers
// file decoded) without starting anything or connecting to Redis. It
// prints "ok", or every problem, one per line.
func check(path string, out io.Writer) error {
	if path == "" {
		fmt.Fprintln(out, "engine -check: give the file with -config FILE")
		return errCheckFailed
	}
	cfg, err := config.Check(path)
	var problems []string
	if err != nil {
		problems = append(problems, lines(err)...)
	}
	// Past readability: the contents must be what the engine will load.
	if cfg != nil && err == nil {
		if len(cfg.DKIM) > 0 {
			if _, err := dkim.NewSigner(cfg.DKIM); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", path, err))
			}
		}
		if s := cfg.Submission; s.TLSCert != "" || s.TLSKey != "" {
			if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
				problems = append(problems, fmt.Sprintf("%s: submission.tls_cert/tls_key: %v", path, err))
			}
		}
		if _, err := throttle.LoadFile(cfg.Throttle.ProvidersFile); err != nil {
			problems = append(problems, fmt.Sprintf("%s: throttle.providers_file: %v", path, err))
		}
	}
	if len(problems) == 0 {
		fmt.Fprintln(out, "ok")
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(out, p)
	}
	return errCheckFailed
}

// lines splits a joined error into its messages.
func lines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
