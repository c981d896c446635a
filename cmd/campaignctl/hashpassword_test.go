package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluice-mta/sluice/pkg/config"
)

// TestHashPassword: the printed hash verifies with bcrypt and is accepted
// by the engine configuration; --token prints a token and its sha256.
func TestHashPassword(t *testing.T) {
	old := hashStdin
	t.Cleanup(func() { hashStdin = old })
	hashStdin = strings.NewReader("correct horse\n")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"hash-password", "--cost", "4"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("%q does not verify: %v", hash, err)
	}
	doc := "submission: {users: [{name: app, password_hash: '" + hash + "', domains: [sluice.test]}]}\n"
	if _, err := config.Parse("e.yaml", []byte(doc)); err != nil {
		t.Fatalf("config refuses the hash: %v", err)
	}

	hashStdin = strings.NewReader("")
	errb.Reset()
	if code := run(context.Background(), []string{"hash-password"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "empty password") {
		t.Errorf("empty input: exit %d, %s", code, errb.String())
	}

	out.Reset()
	if code := run(context.Background(), []string{"hash-password", "--token"}, &out, &errb); code != 0 {
		t.Fatalf("--token: exit %d: %s", code, errb.String())
	}
	var tok, sum string
	for _, l := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "token:"); ok {
			tok = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "sha256:"); ok {
			sum = strings.TrimSpace(v)
		}
	}
	want := sha256.Sum256([]byte(tok))
	if len(tok) != 64 || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("token %q sha256 %q", tok, sum)
	}
}
