package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestJSONErrorsArePlain: decoding errors name the field and what it
// must be, never Go's struct or type names.
func TestJSONErrorsArePlain(t *testing.T) {
	e := start(t)
	for _, c := range []struct{ body, field, msg string }{
		{`{"from":"a@sluice.test","to":"b@example.test","subject":"s","text":"t"}`, "to",
			`"to" must be a list of addresses, not a string`},
		{`{"from":"a@sluice.test","to":[1],"subject":"s","text":"t"}`, "to",
			`"to" must be a list of addresses (strings), found a number in it`},
		{`{"from":["a@sluice.test"],"to":["b@example.test"],"subject":"s","text":"t"}`, "from",
			`"from" must be a string, not a list`},
		{`{"from":"a@sluice.test","to":["b@example.test"],"subject":"s","text":"t","headers":["X"]}`, "headers",
			`"headers" must be an object of header names to string values, not a list`},
		{`{"from":"a@sluice.test","to":["b@example.test"],"subject":"s","txt":"t"}`, "txt",
			`unknown field "txt" (did you mean "text"?); the fields are from, to, reply_to, subject, text, html, headers, raw`},
		{`["a"]`, "", `the body must be a JSON object, not a list`},
		{``, "", `the body is empty: send a JSON object`},
		{`{"from":"a@sluice.test",`, "", `the body is not complete JSON (it ends too early)`},
		{`{"from" "a"}`, "", `the body is not valid JSON (at byte 9): invalid character '"' after object key`},
	} {
		var out errorBody
		resp := e.do(t, "POST", "/v1/messages", anyToken, "application/json", c.body, &out)
		if resp.StatusCode != http.StatusBadRequest || out.Field != c.field || out.Error != c.msg {
			t.Errorf("%s:\n got: %d %q %q\nwant: 400 %q %q", c.body, resp.StatusCode, out.Field, out.Error, c.field, c.msg)
		}
		for _, leak := range []string{"Go struct", "sendRequest", "[]string", "json:"} {
			if strings.Contains(out.Error, leak) {
				t.Errorf("%s: error leaks %q: %s", c.body, leak, out.Error)
			}
		}
	}
}

// TestOpenAPIServed: the description is served without a token, is valid
// JSON, OpenAPI 3.1, and lists both message paths.
func TestOpenAPIServed(t *testing.T) {
	e := start(t)
	resp, err := http.Get(e.url + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/messages", "/v1/messages/{id}"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("paths lack %s", p)
		}
	}
	// Every field of the request is described, and nothing else.
	var full struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &full); err != nil {
		t.Fatal(err)
	}
	var described []string
	for k := range full.Components.Schemas["SendRequest"].Properties {
		described = append(described, k)
	}
	slices.Sort(described)
	fields := slices.Sorted(slices.Values(requestFields))
	if !slices.Equal(described, fields) {
		t.Errorf("SendRequest properties %v, request fields %v", described, fields)
	}
}
