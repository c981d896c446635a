package config

import "testing"

func TestLogSection(t *testing.T) {
	c, err := Parse("e.yaml", []byte("log: {format: json, level: warn}\n"))
	if err != nil || c.Log.Format != "json" || c.Log.Level != "warn" {
		t.Fatalf("%+v %v", c, err)
	}
	for doc, msg := range map[string]string{
		"log:\n  format: xml\n":    `e.yaml:2: log.format: "xml" must be text or json`,
		"log:\n  level: verbose\n": `e.yaml:2: log.level: "verbose" must be debug, info, warn or error`,
	} {
		if _, err := Parse("e.yaml", []byte(doc)); err == nil || err.Error() != msg {
			t.Errorf("%q:\n got: %v\nwant: %s", doc, err, msg)
		}
	}
}
