package notify

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"testing"
)

// FuzzCompose: whatever a visitor types into the recipient, subject or
// body, Compose either refuses it or produces a message whose header is
// exactly the one Compose writes (no field added, none doubled), whose To
// is the recipient, whose Subject decodes to the subject (without white
// space around it), never to an encoded-word the visitor typed, and whose
// body is the text with CRLF line ends.
func FuzzCompose(f *testing.F) {
	f.Add("postmaster@example.test", "Confirm example.test", "Open https://preload.test/confirm/x\n.\n")
	f.Add("postmaster@example.test\r\nBcc: v@else.test", "s", "b")
	f.Add("a@b.test", "hi\nBcc: v@else.test", "b")
	f.Add("a@b.test", "=?utf-8?q?x?=", "\r\n\r\nX-Injected: 1")
	f.Add("\"a b\"@b.test", "Bestätigen Sie bücher.test", "é\r\r\n")
	f.Add("a@b.test", strings.Repeat("x", 300), strings.Repeat("y", 1000))
	m, err := New(Config{Relay: "127.0.0.1:25", From: "STARTTLS preload <noreply@preload.test>", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	want := []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted"}
	f.Fuzz(func(t *testing.T, to, subject, body string) {
		raw, err := m.Compose(Message{To: to, Subject: subject, Body: body})
		if err != nil {
			if !errors.Is(err, ErrHeaderInjection) && !errors.Is(err, ErrAddress) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok || bytes.Count(head, []byte("\r\n")) != len(want)-1 || bytes.ContainsAny(bytes.ReplaceAll(head, []byte("\r\n"), nil), "\r\n") {
			t.Fatalf("header is not %d lines:\n%q", len(want), head)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("composed message does not parse: %v\n%q", err, raw)
		}
		if len(msg.Header) != len(want) {
			t.Fatalf("header fields %v, want %v", msg.Header, want)
		}
		for _, k := range want {
			if len(msg.Header[k]) != 1 {
				t.Fatalf("field %s appears %d times", k, len(msg.Header[k]))
			}
		}
		if got := msg.Header.Get("To"); got != to {
			t.Fatalf("To = %q, want %q", got, to)
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil || got != strings.TrimSpace(subject) {
			t.Fatalf("Subject decodes to %q (%v), want %q", got, err, strings.TrimSpace(subject))
		}
		gotBody, _ := io.ReadAll(msg.Body)
		wantBody := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n"), "\n", "\r\n")
		if string(gotBody) != wantBody {
			t.Fatalf("body %q, want %q", gotBody, wantBody)
		}
	})
}
