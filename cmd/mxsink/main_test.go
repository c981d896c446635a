package main

import (
	"log/slog"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/mxsim"
)

// TestDirKeepsEachMessage: with -dir every accepted message is a file,
// envelope included; a refused recipient is neither listed nor saved.
func TestDirKeepsEachMessage(t *testing.T) {
	dir := t.TempDir()
	cfg := mxsim.Config{Domain: "mx.sink.test", Message: saver(dir, slog.New(slog.DiscardHandler)),
		Rcpt: func(to string) *mxsim.Reply {
			if strings.HasPrefix(to, "dave@") {
				return &mxsim.Reply{Code: 550, Enhanced: "5.1.1", Text: "unknown"}
			}
			return nil
		}}
	srv, err := mxsim.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	body := "Subject: hello\r\n\r\nHi Alice.\r\n"
	if err := smtp.SendMail(srv.Addr(), nil, "news@shop.test", []string{"alice@example.test"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := smtp.SendMail(srv.Addr(), nil, "news@shop.test", []string{"dave@example.test"}, []byte(body)); err == nil {
		t.Fatal("dave was accepted")
	}
	if err := smtp.SendMail(srv.Addr(), nil, "news@shop.test", []string{"bob@example.test", "carol@example.test"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 2 || filepath.Base(files[0]) != "000001-alice@example.test.eml" || filepath.Base(files[1]) != "000002-bob@example.test.eml" {
		t.Fatalf("files %v", files)
	}
	data, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <news@shop.test>\r\nX-Mxsink-To: bob@example.test, carol@example.test\r\n" + body
	if string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
}
