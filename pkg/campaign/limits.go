package campaign

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Size limits of a campaign: a template (inline or file), one merge field
// of one recipient, and one rendered message (checked by launch and lint).
const (
	MaxTemplateBytes = 1 << 20  // 1 MiB per text or html template
	MaxFieldBytes    = 64 << 10 // 64 KiB per merge field value
	MaxMessageBytes  = 10 << 20 // 10 MiB per rendered message
)

// LoadOptions tune LoadWith.
type LoadOptions struct {
	// AllowOutside lets text_file and html_file name files outside the
	// campaign file's directory (by default they must be in it or below,
	// so a campaign cannot make lint or launch read /etc/shadow).
	AllowOutside bool
}

// readTemplate reads a template file named by key (text_file, html_file):
// under dir unless allowed, at most MaxTemplateBytes.
func readTemplate(dir, p string, allowOutside bool) ([]byte, error) {
	if !allowOutside {
		if err := inside(dir, p); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTemplateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxTemplateBytes {
		return nil, fmt.Errorf("%s is larger than %s, the limit for a template", p, Size(MaxTemplateBytes))
	}
	return b, nil
}

// inside refuses p unless it is dir or below it, symbolic links followed.
func inside(dir, p string) error {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	realP, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	realDir, _ = filepath.Abs(realDir)
	realP, _ = filepath.Abs(realP)
	rel, err := filepath.Rel(realDir, realP)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return errOutside{p: p, dir: realDir}
	}
	return nil
}

type errOutside struct{ p, dir string }

func (e errOutside) Error() string {
	return fmt.Sprintf("%s is outside %s, the campaign file's directory: templates must be in it or below it (move or copy the file there)", e.p, e.dir)
}

// Size writes n bytes as a person would: 64 KiB, 10 MiB, 123 bytes.
func Size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
