package keyspace_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// keyOwners maps the first part of a key name (Space.Key("campaign", id))
// to the one package that may name it.
var keyOwners = map[string]string{
	"campaign":  "pkg/store", // a campaign's hash: definition, state, counters
	"campaigns": "pkg/store", // the campaign index
	"rcpt":      "pkg/store", // a campaign's records
	"parked":    "pkg/store", // a paused campaign's parked jobs
	"q":         "pkg/streams",
	"delayed":   "pkg/streams",
	"msg":       "pkg/streams",
	"tx":        "pkg/streams",
	"supp":      "pkg/suppression",
	"thr":       "pkg/throttle",
	"warm":      "pkg/warmup",       // warm-up ramps: state, per-day counters, providers seen per source
	"fb":        "pkg/feedbackloop", // per sending domain complaint and bounce counters
	"mid":       "pkg/verp",         // transactional Message-ID → job index (also written by pkg/streams' enqueue script through keys verp names)
	"events":    "pkg/events",       // the events stream
	"webhook":   "pkg/webhook",      // webhook cursors and leases
}

// streamKeyMethods are streams.Queue's methods that name a stream, a
// delayed set or a stored message's key.
var streamKeyMethods = map[string]bool{"Stream": true, "Delayed": true, "MessageKey": true}

// TestKeysHaveOneOwner enforces that every Redis key is named by one
// package: no non-test file outside a key's owner builds its name, and no
// file outside pkg/streams asks streams for a stream or delayed-set key to
// read or write it directly. Tests may inspect Redis as they like.
func TestKeysHaveOneOwner(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		dir := filepath.ToSlash(filepath.Dir(rel))
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch {
			case (sel.Sel.Name == "Key" && len(call.Args) > 0) || (sel.Sel.Name == "In" && len(call.Args) > 1):
				arg := call.Args[0]
				if sel.Sel.Name == "In" {
					arg = call.Args[1]
				}
				lit, ok := arg.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				part, _ := strconv.Unquote(lit.Value)
				if owner, ok := keyOwners[part]; ok && dir != owner {
					t.Errorf("%s: names key %q, which belongs to %s", fset.Position(call.Pos()), part, owner)
				}
			case streamKeyMethods[sel.Sel.Name] && dir != "pkg/streams":
				t.Errorf("%s: %s names a queue key outside pkg/streams; give streams a method instead", fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
