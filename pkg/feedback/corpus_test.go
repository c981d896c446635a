package feedback

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusDir is the shared corpus of real bounces and complaints beside
// the repository (../shared/corpus/bounces from its root). It is never
// copied into the project; the test skips when it is absent.
const corpusDir = "../../../shared/corpus/bounces"

// placeholder is what the reference classifier (sisimai) writes when a
// report names no recipient. It is no address: such verdicts are not
// counted when measuring whether the recipient was found.
const placeholder = "undisclosed-recipient-in-headers@libsisimai.org.invalid"

type refVerdict struct {
	Recipient    string `json:"recipient"`
	Reason       string `json:"reason"`
	Hard         bool   `json:"hard"`
	Status       string `json:"status"`
	Code         string `json:"code"`
	FeedbackType string `json:"feedback_type"`
}

// referenceWrong lists verdicts of the reference we are sure are wrong,
// by file and recipient, with why. They are counted with our verdict.
var referenceWrong = map[string]string{
	"lhost-office365-13.eml kijitora-nyaan@neko.kyoto.example.jp": "the report says \"kijitora-nyaan wasn't found at neko.kyoto.example.jp\" and 550 5.1.10 RecipientNotFound; the reference calls it undefined",
	"rfc3464-01.eml userunknown@bouncehammer.jp":                  "Status 5.1.1 and Diagnostic-Code 550 5.1.1 User Unknown; the reference followed the human-readable \"Not enough disk space\" over the machine-readable fields (RFC 3464)",
	"lhost-exim-37.eml kijitora@example.net":                      "\"553 neko.example.com does not exist\" names the sender's envelope domain (Return-path sironeko-nyaan@neko.example.com), not the recipient's",
}

// TestCorpus measures agreement with the reference verdicts in
// expected.jsonl: hard versus not hard on at least 95% of the recipients
// it found, the recipient's address found for at least 95%, and every
// feedback verdict a complaint.
func TestCorpus(t *testing.T) {
	f, err := os.Open(filepath.Join(corpusDir, "expected.jsonl"))
	if os.IsNotExist(err) {
		t.Skipf("corpus not present at %s", corpusDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type row struct{ n, found, agree int }
	byReason := map[string]*row{}
	var total, withAddr, found, agree, feedback, complaints int
	verbose := os.Getenv("FEEDBACK_CORPUS_VERBOSE") != ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			File     string       `json:"file"`
			Verdicts []refVerdict `json:"verdicts"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if len(line.Verdicts) == 0 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir, line.File))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(raw, "")
		if err != nil {
			t.Errorf("%s: %v", line.File, err)
			continue
		}
		for _, v := range line.Verdicts {
			total++
			r := byReason[v.Reason]
			if r == nil {
				r = &row{}
				byReason[v.Reason] = r
			}
			r.n++
			var got *Recipient
			for i := range rep.Recipients {
				if strings.EqualFold(rep.Recipients[i].Address, v.Recipient) || v.Recipient == placeholder {
					got = &rep.Recipients[i]
					break
				}
			}
			if v.Recipient != placeholder {
				withAddr++
				if got != nil {
					found++
					r.found++
				}
			}
			hard := got != nil && got.Kind == Hard
			if why, ok := referenceWrong[line.File+" "+v.Recipient]; ok {
				t.Logf("%s %s: reference says hard=%v, we say hard=%v: the reference is wrong: %s", line.File, v.Recipient, v.Hard, hard, why)
				v.Hard = hard
			}
			if hard == v.Hard {
				agree++
				r.agree++
			}
			if v.Reason == "feedback" {
				feedback++
				if got != nil && got.Kind == Complaint {
					complaints++
				} else {
					t.Errorf("%s %s: a feedback report, but we say %+v", line.File, v.Recipient, got)
				}
			}
			if verbose && (got == nil || hard != v.Hard) {
				desc := "not found"
				if got != nil {
					desc = fmt.Sprintf("%s/%s %s %d %.150q", got.Kind, got.Reason, got.Status, got.Code, got.Text)
				}
				var addrs []string
				for _, g := range rep.Recipients {
					addrs = append(addrs, g.Address)
				}
				t.Logf("MISMATCH %s %s ref=%s hard=%v status=%s: %s (format %s, found %v)", line.File, v.Recipient, v.Reason, v.Hard, v.Status, desc, rep.Format, addrs)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	reasons := make([]string, 0, len(byReason))
	for k := range byReason {
		reasons = append(reasons, k)
	}
	sort.Slice(reasons, func(i, j int) bool {
		return byReason[reasons[i]].n > byReason[reasons[j]].n || byReason[reasons[i]].n == byReason[reasons[j]].n && reasons[i] < reasons[j]
	})
	t.Logf("%-16s %5s %6s %6s", "reference", "n", "found", "hard=")
	for _, k := range reasons {
		r := byReason[k]
		t.Logf("%-16s %5d %6d %6d", k, r.n, r.found, r.agree)
	}
	pct := func(a, b int) float64 { return 100 * float64(a) / float64(b) }
	t.Logf("recipients %d: hard/not-hard agree %d (%.1f%%); address found %d of %d (%.1f%%); complaints %d of %d feedback",
		total, agree, pct(agree, total), found, withAddr, pct(found, withAddr), complaints, feedback)
	if pct(agree, total) < 95 {
		t.Errorf("hard/not-hard agreement %.1f%% < 95%%", pct(agree, total))
	}
	if pct(found, withAddr) < 95 {
		t.Errorf("recipient address found %.1f%% < 95%%", pct(found, withAddr))
	}
}
