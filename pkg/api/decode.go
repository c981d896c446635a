package api

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/pkg/suggest"
)

// requestFields are the JSON names of sendRequest's fields.
var requestFields = func() []string {
	var names []string
	for f := range reflect.TypeFor[sendRequest]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

// fieldTypes says what each field must be, in the client's terms.
var fieldTypes = map[string]string{
	"to":      "a list of addresses",
	"headers": "an object of header names to string values",
}

// jsonError turns a decoding error of the request body into a plain
// message naming the field and what it must be, never Go's type names.
func jsonError(err error) *inputError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return bad("", "the body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("", "the body is not complete JSON (it ends too early)")
	case errors.As(err, &syn):
		return bad("", "the body is not valid JSON (at byte %d): %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return bad("", "the body must be a JSON object, not %s", article(typ.Value))
		}
		top, _, _ := strings.Cut(field, ".")
		want, ok := fieldTypes[top]
		if !ok {
			want = "a string"
		}
		if top == "to" && typ.Type.Kind() == reflect.String {
			return bad(top, "%q must be a list of addresses (strings), found %s in it", top, article(typ.Value))
		}
		return bad(top, "%q must be %s, not %s", top, want, article(typ.Value))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return bad(name, "unknown field %q%s; the fields are %s", name, suggest.Hint(name, requestFields), strings.Join(requestFields, ", "))
	}
	return bad("", "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// article names a JSON value kind as a client would: "a string", "a number".
func article(v string) string {
	switch v {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "":
		return "something else"
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return "a " + v
}
