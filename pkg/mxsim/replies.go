package mxsim

// Real provider replies (provider-responses.md), for scripting a
// simulator. Texts are abridged as in that table.
var (
	// GmailRateLimited: Gmail paces the sending IP (#1).
	GmailRateLimited = Reply{421, "4.7.28", "Gmail has detected an unusual rate of unsolicited email originating from your IP address. " +
		"To protect our users from spam, mail sent from your IP address has been temporarily rate limited."}
	// GmailReputation: Gmail refuses for the sending domain's reputation (#2).
	GmailReputation = Reply{421, "4.7.0", "This message is suspicious due to the very low reputation of the sending domain."}
	// GmailReceivingTooFast: one recipient receives too fast (#3); a
	// recipient-scoped deferral.
	GmailReceivingTooFast = Reply{450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents " +
		"additional messages from being delivered. Please resend your message at a later point in time."}
	// GmailBusy (#10).
	GmailBusy = Reply{421, "4.4.5", "Server busy, try again later."}
	// YahooTSS04: Yahoo defers the source for volume or complaints (#12).
	YahooTSS04 = Reply{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - " +
		"4.16.55.1; see https://postmaster.yahooinc.com/error-codes"}
	// YahooResources (#16).
	YahooResources = Reply{451, "", "Message temporarily deferred due to resource constraints - [#4.16.1]"}
	// MicrosoftBusy (#17), the simulator's default over the rate.
	MicrosoftBusy = Reply{451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)"}
	// MicrosoftReputation (#18).
	MicrosoftReputation = Reply{451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."}
	// MicrosoftRP001 (#19).
	MicrosoftRP001 = Reply{421, "", "RP-001 (BAY004-MC1F4) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. " +
		"We have limits for how many messages can be sent per hour and per day."}
	// SESThrottling (#29).
	SESThrottling = Reply{454, "", "Throttling failure: Maximum sending rate exceeded."}
)

// ComcastSessions is Comcast's greeting over its session limit (#27).
const ComcastSessions = "421 mx.comcast.test comcast Too many sessions opened [Too many sessions opened]"

// Presets are the over-rate replies by name, for cmd/mxsim.
var Presets = map[string]Reply{
	"gmail-4.7.28":    GmailRateLimited,
	"gmail-4.7.0":     GmailReputation,
	"gmail-4.4.5":     GmailBusy,
	"yahoo-tss04":     YahooTSS04,
	"yahoo-4.16.1":    YahooResources,
	"microsoft-busy":  MicrosoftBusy,
	"microsoft-650":   MicrosoftReputation,
	"microsoft-rp001": MicrosoftRP001,
	"ses-throttling":  SESThrottling,
}
