package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// hashStdin is where hash-password reads the password; tests replace it.
var hashStdin io.Reader = os.Stdin

func init() { order = append(order, "hash-password") }

// cmdHashPassword prints a bcrypt hash for submission.users[].password_hash,
// or with --token a new random API token and the SHA-256 for
// http.api_tokens[].sha256.
func cmdHashPassword(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "hash-password", "[--cost N] [--token]",
		"Reads a password from standard input (prompting without echo on a terminal) and prints its bcrypt\n"+
			"hash for submission.users[].password_hash in the engine configuration.\n"+
			"With --token, reads nothing: prints a new random API token and, on the next line, its SHA-256 in\n"+
			"hex for http.api_tokens[].sha256 (the engine keeps only the hash; give the token to the client).",
		"campaignctl hash-password < password.txt")
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (4-31)")
	token := fs.Bool("token", false, "print a new random API token and its sha256 instead")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("takes no arguments (the password is read from standard input): %w", errUsage)
	}
	if *token {
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return fmt.Errorf("random token: %w", err)
		}
		tok := hex.EncodeToString(buf)
		sum := sha256.Sum256([]byte(tok))
		fmt.Fprintf(e.stdout, "token:  %s\nsha256: %s\n", tok, hex.EncodeToString(sum[:]))
		return nil
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return fmt.Errorf("--cost %d: want %d to %d: %w", *cost, bcrypt.MinCost, bcrypt.MaxCost, errUsage)
	}
	pw, err := readPassword(e)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		return fmt.Errorf("bcrypt: %w", err)
	}
	fmt.Fprintln(e.stdout, string(hash))
	return nil
}

// readPassword prompts twice without echo on a terminal, or reads the
// first line of a pipe or file.
func readPassword(e *env) ([]byte, error) {
	if f, ok := hashStdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if string(pw) != string(again) {
			return nil, errors.New("the passwords differ")
		}
		return checkPassword(pw)
	}
	line, err := bufio.NewReader(hashStdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	return checkPassword([]byte(strings.TrimRight(line, "\r\n")))
}

func checkPassword(pw []byte) ([]byte, error) {
	switch {
	case len(pw) == 0:
		return nil, errors.New("empty password")
	case len(pw) > 72:
		return nil, errors.New("password longer than 72 bytes (bcrypt ignores the rest)")
	}
	return pw, nil
}
