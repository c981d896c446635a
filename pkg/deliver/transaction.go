package deliver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// txState says what a transaction left the session fit for.
type txState int

const (
	txClean  txState = iota // reusable
	txBroken                // discard: I/O failure, timeout, 421, protocol error
	txStale                 // a pooled session that had died while idle: discard and retry, nothing was said about the message
)

// prepared is a message made ready once for every host it may be tried on.
type prepared struct {
	env        Envelope
	data       [][]byte // CRLF-canonical, in pieces written in turn
	size       int      // of data
	eightBit   bool     // body or header has 8-bit bytes
	utf8Addr   bool     // an envelope address is not ASCII (RFC 6531)
	utf8Header bool     // the header has 8-bit bytes (RFC 6532)
}

// transact runs one transaction. On a reused session it first sends RSET,
// which clears whatever the last transaction left and proves the session
// alive; with PIPELINING (RFC 2920 §3.1) RSET, MAIL, RCPT and DATA go out
// in one write and cost one round trip.
func (c *conn) transact(p *prepared, reused bool) (outcome.Outcome, txState) {
	c.wtimeout = c.cfg.CommandTimeout
	if lim := c.sizeLimit(); lim > 0 && int64(p.size) > lim {
		return outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeMessage, Stage: outcome.StageMail, Host: c.host, Enhanced: "5.3.4",
			Text: fmt.Sprintf("message of %d bytes exceeds the SIZE %d that %s advertises (RFC 1870)", p.size, lim, c.host)}, txClean
	}
	utf8 := p.utf8Addr || p.utf8Header && c.has("SMTPUTF8")
	if p.utf8Addr && !c.has("SMTPUTF8") {
		return outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeMessage, Stage: outcome.StageMail, Host: c.host, Enhanced: "5.6.7",
			Text: fmt.Sprintf("non-ASCII address, and %s does not offer SMTPUTF8 (RFC 6531 §3.2)", c.host)}, txClean
	}

	cmds := make([]string, 0, 4) // RSET, MAIL, RCPT, DATA or BDAT
	if reused {
		cmds = append(cmds, "RSET")
	}
	cmds = append(cmds, c.mailCommand(p, utf8), "RCPT TO:<"+p.env.To+">")
	pipelined := c.has("PIPELINING") && !c.cfg.DisablePipelining
	if pipelined && c.has("CHUNKING") && !c.cfg.DisableChunking {
		return c.chunked(p, reused, cmds)
	}
	cmds = append(cmds, "DATA")
	if pipelined {
		if err := c.send(cmds...); err != nil {
			return c.txIOFail(outcome.StageMail, "MAIL", err, reused, true)
		}
	}

	var fail *outcome.Outcome
	broken := false
	for i, cmd := range cmds {
		verb, _, _ := strings.Cut(cmd, " ")
		stage, timeout := stageOf(verb), c.cfg.CommandTimeout
		if verb == "DATA" {
			timeout = c.cfg.DataInitTimeout // RFC 5321 §4.5.3.2.4
		}
		if !pipelined {
			if err := c.send(cmd); err != nil {
				return c.txIOFail(stage, verb, err, reused, i == 0)
			}
		}
		r, err := c.readReply(timeout)
		if err != nil {
			if fail != nil { // the answer is known; only the session is lost
				return *fail, txBroken
			}
			return c.txIOFail(stage, verb, err, reused, i == 0)
		}
		broken = broken || r.code == 421 // closing the channel (RFC 5321 §3.8)
		switch {
		case verb == "RSET" && r.code != 250:
			// A pooled session the server timed out answers RSET with 421
			// 4.4.2: it died while idle, the message is untouched.
			return outcome.Outcome{}, txStale
		case verb == "RSET":
		case verb == "MAIL" && r.code/100 == 2:
			c.sent++
		case verb == "DATA" && r.code == 354 && fail != nil:
			// RFC 2920 §3.1: a server that opened DATA despite a refused
			// RCPT gets an empty message it will not deliver.
			if err := c.send("."); err != nil {
				return *fail, txBroken
			}
			if _, err := c.readReply(c.cfg.DataTimeout); err != nil {
				return *fail, txBroken
			}
		case verb == "DATA" && r.code == 354:
		case fail == nil && (r.code/100 != 2 || verb == "DATA"): // DATA wants 354, nothing else
			o := r.outcome(stage, c.host)
			fail = &o
		}
		if fail != nil && !pipelined {
			break
		}
	}
	if fail != nil {
		if broken {
			return *fail, txBroken
		}
		return *fail, txClean
	}
	return c.data(p)
}

// data sends the message and reads the verdict on it.
func (c *conn) data(p *prepared) (outcome.Outcome, txState) {
	c.wtimeout = c.cfg.DataBlockTimeout // RFC 5321 §4.5.3.2.5
	err := writeData(c.bw, p.data)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		return c.ioOutcome(outcome.StageData, "the message data", c.cfg.DataBlockTimeout, err), txBroken
	}
	r, err := c.readReply(c.cfg.DataTimeout) // RFC 5321 §4.5.3.2.6: 10 min
	if err != nil {
		out := c.ioOutcome(outcome.StageData, "the end of data", c.cfg.DataTimeout, err)
		// RFC 1047: the receiver may have taken the message anyway.
		out.Text += " (the message may have been delivered)"
		return out, txBroken
	}
	if r.code/100 == 2 {
		return outcome.Outcome{Status: outcome.Delivered, Code: r.code, Enhanced: r.enh, Text: r.text, Stage: outcome.StageData, Host: c.host}, txClean
	}
	if r.code == 421 {
		return r.outcome(outcome.StageData, c.host), txBroken
	}
	return r.outcome(outcome.StageData, c.host), txClean
}

// txIOFail reports an I/O failure before DATA. On a pooled session, a
// failure before any reply means the session had died while idle.
func (c *conn) txIOFail(stage outcome.Stage, what string, err error, reused, first bool) (outcome.Outcome, txState) {
	out := c.ioOutcome(stage, what, c.cfg.CommandTimeout, err)
	if reused && first && out.Reason != outcome.Interrupted {
		return out, txStale
	}
	return out, txBroken
}

// mailCommand builds MAIL FROM with the parameters the server offers:
// BODY=8BITMIME for 8-bit content (RFC 6152), SMTPUTF8 (RFC 6531) and the
// size (RFC 1870 §6) so the server can refuse before the data is sent.
func (c *conn) mailCommand(p *prepared, utf8 bool) string {
	var b strings.Builder
	b.WriteString("MAIL FROM:<")
	b.WriteString(p.env.From)
	b.WriteString(">")
	// Without 8BITMIME on offer, 8-bit mail is sent as is, as Postfix and
	// most MTAs do: receivers accept it, and recoding would break DKIM.
	if p.eightBit && c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	if c.has("SIZE") {
		b.WriteString(" SIZE=")
		b.WriteString(strconv.Itoa(p.size))
	}
	return b.String()
}

func stageOf(verb string) outcome.Stage {
	switch verb {
	case "RSET", "MAIL":
		return outcome.StageMail
	case "RCPT":
		return outcome.StageRcpt
	}
	return outcome.StageData
}
