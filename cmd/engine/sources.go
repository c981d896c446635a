package main

import (
	"fmt"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
)

// checkSources binds every egress source's address once, before anything
// starts: a source this host cannot send from (an address not configured
// on it, a typo) fails the start with an error naming the source, rather
// than every delivery from it later. The engine checks again as it runs.
func checkSources(cfg *config.Config) error {
	srcs := make([]deliver.Source, len(cfg.Sources))
	for i, s := range cfg.Sources {
		srcs[i] = deliver.Source{Name: s.Name, Address: s.Address, EHLO: s.EHLO}
	}
	if err := deliver.CheckSources(srcs); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	return nil
}
