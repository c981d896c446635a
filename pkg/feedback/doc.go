// Package feedback reads the mail that comes back after sluice has sent
// a message: asynchronous bounces (RFC 3464 delivery status
// notifications and the common non-standard formats of Exchange and
// Office 365, qmail, Exim, Postfix, Sendmail, Gmail, Yahoo, Amazon SES...),
// feedback-loop complaints (ARF, RFC 5965) and auto-replies (RFC 3834).
//
// Parse turns one message into a Report: which job it is about (the VERP
// envelope recipient, see pkg/verp, or the original's Return-Path,
// X-Sluice-Job or Message-ID quoted in the report: sluice's campaign
// Message-IDs carry the job id, verp.MessageID) and, for each recipient the report names,
// a Kind (hard, soft, complaint, auto-reply, unknown) and a Reason from a
// stable list, keeping the reported status code and text. Classify does
// the same for one status and text, so every caller judges alike.
//
// A hard verdict means the address itself is bad and may be suppressed.
// Bounces about the sender (SPF, DKIM, DMARC, a blocklisted sending IP,
// relaying denied...) are never hard, whatever their code: they say
// nothing about the recipient.
//
// The package depends on the standard library (net/mail, mime/multipart,
// net/textproto) and pkg/verp only. No Go library parses the non-standard
// bounce formats; the DSN fields themselves are a header block read with
// net/textproto.
package feedback
