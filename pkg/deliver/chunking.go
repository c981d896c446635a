package deliver

import (
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// chunked runs a transaction with BDAT (RFC 3030) pipelined behind the
// commands (RFC 2920): RSET, MAIL, RCPT and "BDAT size LAST" with the
// whole message after it, neither dot-stuffed nor ended by a dot, go out
// in one write, and the transaction costs one round trip instead of two.
// A receiver consumes a chunk even when it refuses the command (RFC 3030
// §2), so a refused MAIL or RCPT leaves the session in step; the answer
// to BDAT is then ignored, and the first refusal is the outcome.
func (c *conn) chunked(p *prepared, reused bool, cmds []string) (outcome.Outcome, txState) {
	c.wtimeout = c.cfg.DataBlockTimeout // most of this write is message data
	for _, l := range cmds {
		_, _ = c.bw.WriteString(l)
		_, _ = c.bw.Write(crlf)
	}
	var num [20]byte
	_, _ = c.bw.WriteString("BDAT ")
	_, _ = c.bw.Write(strconv.AppendInt(num[:0], int64(p.size), 10))
	_, _ = c.bw.WriteString(" LAST\r\n")
	for _, part := range p.data {
		_, _ = c.bw.Write(part)
	}
	if err := c.bw.Flush(); err != nil {
		return c.txIOFail(outcome.StageMail, "MAIL", err, reused, true)
	}

	var fail *outcome.Outcome
	broken := false
	for i, cmd := range append(cmds, "BDAT") { // transact left room for it
		verb, _, _ := strings.Cut(cmd, " ")
		timeout := c.cfg.CommandTimeout
		if verb == "BDAT" {
			timeout = c.cfg.DataTimeout // the verdict on the message, as after the dot
		}
		r, err := c.readReply(timeout)
		switch {
		case err != nil && fail != nil: // the answer is known; only the session is lost
			return *fail, txBroken
		case err != nil && verb == "BDAT":
			out := c.ioOutcome(outcome.StageData, "the end of data", timeout, err)
			out.Text += " (the message may have been delivered)" // RFC 1047
			return out, txBroken
		case err != nil:
			return c.txIOFail(stageOf(verb), verb, err, reused, i == 0)
		}
		broken = broken || r.code == 421
		switch {
		case verb == "RSET" && r.code == 421:
			// A pooled session the server had timed out: it closes without
			// reading on, so the message went nowhere.
			return outcome.Outcome{}, txStale
		case verb == "RSET": // any other answer: the replies that follow tell
		case verb == "MAIL" && r.code/100 == 2:
			c.sent++
		case verb == "BDAT" && fail == nil && r.code/100 == 2:
			return outcome.Outcome{Status: outcome.Delivered, Code: r.code, Enhanced: r.enh, Text: r.text, Stage: outcome.StageData, Host: c.host}, txClean
		case fail == nil && r.code/100 != 2:
			o := r.outcome(stageOf(verb), c.host)
			fail = &o
		}
	}
	if broken {
		return *fail, txBroken
	}
	return *fail, txClean
}
