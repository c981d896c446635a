package config

import "encoding/hex"

// DashboardTokens are the SHA-256 (hex) of the tokens that may open the
// dashboard: ui_token and every API token. None: the dashboard is off.
func (h HTTP) DashboardTokens() []string {
	var out []string
	if h.UIToken != "" {
		out = append(out, h.UIToken)
	}
	for _, t := range h.APITokens {
		out = append(out, t.SHA256)
	}
	return out
}

func (h HTTP) dashboardValidate() error {
	if h.UIToken == "" {
		return nil
	}
	if b, err := hex.DecodeString(h.UIToken); err != nil || len(b) != 32 {
		return invalid("http.ui_token", "must be the token's SHA-256 as 64 hex digits (campaignctl hash-password --token prints a token and its sha256)")
	}
	return nil
}
