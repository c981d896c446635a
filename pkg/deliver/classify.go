package deliver

// Classify turns an SMTP reply into an Outcome (status and scope). It is the
// one place reply codes and texts are interpreted.
//
// This first version goes by the reply code alone; the provider table in
// docs (shared provider-responses) refines it.
func Classify(code int, enhanced, text string) Outcome {
	o := Outcome{Code: code, Enhanced: enhanced, Text: text}
	switch {
	case code >= 200 && code < 300:
		o.Status = Delivered
	case code >= 400 && code < 500:
		o.Status, o.Scope = Deferred, ScopeProvider
	default:
		o.Status, o.Scope = Bounced, ScopeRecipient
	}
	return o
}
