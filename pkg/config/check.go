package config

import (
	"errors"
	"fmt"
	"os"
)

// Check loads path as Load does and then checks that every file the
// configuration names (DKIM keys, the submission TLS certificate and key,
// the providers file) can be read. It returns the configuration and every
// problem found, each naming the file and line of its key; it starts
// nothing and connects to nothing. The configuration is nil when the file
// itself does not parse.
func Check(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, chk, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	var errs []error
	file := func(key, name string) {
		if name == "" {
			return
		}
		if err := readable(name); err != nil {
			errs = append(errs, chk.at(chk.lineOf(key), fmt.Errorf("%s: %w", key, err)))
		}
	}
	for i, d := range c.DKIM {
		file(fmt.Sprintf("dkim[%d].key_file", i), d.KeyFile)
	}
	file("submission.tls_cert", c.Submission.TLSCert)
	file("submission.tls_key", c.Submission.TLSKey)
	file("throttle.providers_file", c.Throttle.ProvidersFile)
	return c, errors.Join(errs...)
}

// readable opens name for reading and refuses a directory.
func readable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", name)
	}
	return nil
}
