package throttle

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/sluice-mta/sluice/pkg/config"
)

// shipped is the default providers file, replaced by
// config throttle.providers_file.
//
//go:embed providers.yaml
var shipped []byte

// Provider is one mailbox provider: how to recognise its destinations and
// its limits.
type Provider struct {
	Name string `yaml:"name"`
	// MXSuffixes match MX host names ("google.com" matches
	// "aspmx.l.google.com"); a destination is the provider's when every
	// one of its hosts matches.
	MXSuffixes []string      `yaml:"mx_suffixes"`
	Domains    []string      `yaml:"domains"`
	Limits     config.Limits `yaml:"limits"`
}

// File is a providers file: providers and response rules.
type File struct {
	Providers []Provider    `yaml:"providers"`
	Rules     []config.Rule `yaml:"rules"`
}

// LoadFile reads a providers file; path "" reads the shipped one.
func LoadFile(path string) (*File, error) {
	data, name := shipped, "providers.yaml (shipped)"
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("providers file: %w", err)
		}
		name = path
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	seen := map[string]bool{}
	for i, p := range f.Providers {
		if p.Name == "" || strings.ContainsAny(p.Name, " :{}") {
			return nil, fmt.Errorf("%s: provider %d: name %q must be non-empty, without spaces, ':' or braces", name, i, p.Name)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%s: provider %q defined twice", name, p.Name)
		}
		seen[p.Name] = true
	}
	return &f, nil
}

// matcher rolls destinations up into providers.
type matcher struct {
	domains map[string]string // domain -> provider
	// suffixes are sorted longest first, so ".olc.protection.outlook.com"
	// decides before ".outlook.com" would.
	suffixes []suffix

	mu    sync.RWMutex
	cache map[string]string // Destination.Key -> provider name or ""
}

// maxCache bounds the per-MX-set cache; past it the cache starts over.
const maxCache = 100000

type suffix struct{ s, provider string }

func newMatcher(ps []Provider) *matcher {
	m := &matcher{domains: map[string]string{}, cache: map[string]string{}}
	for _, p := range ps {
		for _, d := range p.Domains {
			m.domains[normName(d)] = p.Name
		}
		for _, s := range p.MXSuffixes {
			m.suffixes = append(m.suffixes, suffix{normName(s), p.Name})
		}
	}
	sort.SliceStable(m.suffixes, func(i, j int) bool { return len(m.suffixes[i].s) > len(m.suffixes[j].s) })
	return m
}

// normName lower-cases a name and drops leading and trailing dots.
func normName(s string) string {
	return strings.Trim(strings.ToLower(strings.TrimSpace(s)), ".")
}

// provider names the provider of a destination, or "" when none
// matches: the recipient domain, the destination's own key (its MX host
// set or route, which caches the answer) and its host names.
func (m *matcher) provider(domain, key string, hosts []string) string {
	if p, ok := m.domains[normName(domain)]; ok {
		return p
	}
	if len(hosts) == 0 {
		return ""
	}
	m.mu.RLock()
	p, ok := m.cache[key]
	m.mu.RUnlock()
	if ok {
		return p
	}
	p = m.byHosts(hosts)
	m.mu.Lock()
	if len(m.cache) >= maxCache {
		clear(m.cache)
	}
	m.cache[key] = p
	m.mu.Unlock()
	return p
}

// byHosts returns the provider every host belongs to, or "".
func (m *matcher) byHosts(hosts []string) string {
	found := ""
	for _, h := range hosts {
		p := m.hostProvider(normName(h))
		if p == "" || (found != "" && p != found) {
			return ""
		}
		found = p
	}
	return found
}

func (m *matcher) hostProvider(host string) string {
	for _, s := range m.suffixes {
		if host == s.s || strings.HasSuffix(host, "."+s.s) {
			return s.provider
		}
	}
	return ""
}
