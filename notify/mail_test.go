package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func newMailer(t *testing.T, cfg Config) *Mailer {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "STARTTLS preload <noreply@preload.test>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = testclock.New(t0).Now
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// results collects what Done reports.
type results struct {
	mu   sync.Mutex
	errs []error
}

func (r *results) done(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// TestMailerDelivers sends a message to a lab relay, in the clear and over
// verified STARTTLS, and reads back what it received: the envelope, an RFC
// 5322 header and the body with CRLF line ends and a dot-stuffed line.
func TestMailerDelivers(t *testing.T) {
	pki := lab.NewPKI(t)
	cert := pki.Leaf("127.0.0.5")
	for _, tc := range []struct {
		name     string
		starttls bool
	}{{"plain", false}, {"starttls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeGood, &cert)
			cfg := Config{Relay: mx.Addr(), StartTLS: tc.starttls}
			if tc.starttls {
				cfg.CAFile = pki.WriteRootPEM(t)
			}
			m := newMailer(t, cfg)
			var r results
			msg := Message{To: "postmaster@example.test", Subject: "Confirm example.test — STARTTLS preload",
				Body: "Open this link:\nhttps://preload.test/confirm/abc\n.\nend\n", Done: r.done}
			if err := m.Enqueue(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			m.Close() // sends what is queued
			if len(r.errs) != 1 || r.errs[0] != nil {
				t.Fatalf("Done got %v, want one nil", r.errs)
			}
			msgs := mx.Messages()
			if len(msgs) != 1 {
				t.Fatalf("relay received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if got.TLS != tc.starttls {
				t.Errorf("TLS = %v, want %v", got.TLS, tc.starttls)
			}
			if got.From != "noreply@preload.test" || len(got.To) != 1 || got.To[0] != "postmaster@example.test" {
				t.Errorf("envelope %q -> %q", got.From, got.To)
			}
			parsed, err := mail.ReadMessage(bytes.NewReader(got.Data))
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Header
			if to := h.Get("To"); to != "postmaster@example.test" {
				t.Errorf("To = %q", to)
			}
			if from, err := h.AddressList("From"); err != nil || from[0].Address != "noreply@preload.test" || from[0].Name != "STARTTLS preload" {
				t.Errorf("From = %q (%v)", h.Get("From"), err)
			}
			dec := new(mime.WordDecoder)
			if s, err := dec.DecodeHeader(h.Get("Subject")); err != nil || s != msg.Subject {
				t.Errorf("Subject = %q decodes to %q (%v)", h.Get("Subject"), s, err)
			}
			if d, err := h.Date(); err != nil || !d.Equal(t0) {
				t.Errorf("Date = %q (%v)", h.Get("Date"), err)
			}
			if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@preload.test>") {
				t.Errorf("Message-ID = %q", id)
			}
			if h.Get("Auto-Submitted") != "auto-generated" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; charset=utf-8") {
				t.Errorf("header %v", h)
			}
			body, _ := io.ReadAll(parsed.Body)
			if want := "Open this link:\r\nhttps://preload.test/confirm/abc\r\n.\r\nend\r\n"; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
		})
	}
}

// TestMessageCheck refuses every field that could add a header or break
// the message, at Enqueue, before anything is queued.
func TestMessageCheck(t *testing.T) {
	mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeGood, nil)
	m := newMailer(t, Config{Relay: mx.Addr()})
	ok := Message{To: "postmaster@example.test", Subject: "s", Body: "b"}
	for _, tc := range []struct {
		name string
		edit func(*Message)
		want error
	}{
		{"to with CRLF", func(m *Message) { m.To = "postmaster@example.test\r\nBcc: victim@else.test" }, ErrHeaderInjection},
		{"to with LF", func(m *Message) { m.To = "postmaster@example.test\nBcc: victim@else.test" }, ErrHeaderInjection},
		{"subject with CRLF", func(m *Message) { m.Subject = "hi\r\nBcc: victim@else.test" }, ErrHeaderInjection},
		{"subject with NUL", func(m *Message) { m.Subject = "hi\x00" }, ErrHeaderInjection},
		{"subject not UTF-8", func(m *Message) { m.Subject = "hi\xff" }, ErrHeaderInjection},
		{"to with a name", func(m *Message) { m.To = "Someone <postmaster@example.test>" }, ErrAddress},
		{"two recipients", func(m *Message) { m.To = "a@example.test, b@example.test" }, ErrAddress},
		{"no address", func(m *Message) { m.To = "nobody" }, ErrAddress},
		{"empty to", func(m *Message) { m.To = "" }, ErrAddress},
		{"long subject", func(m *Message) { m.Subject = strings.Repeat("x", MaxSubject+1) }, ErrTooLarge},
		{"long body", func(m *Message) { m.Body = strings.Repeat("x\n", MaxBody) }, ErrTooLarge},
		{"long line", func(m *Message) { m.Body = strings.Repeat("x", 999) }, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := ok
			tc.edit(&msg)
			if err := m.Enqueue(context.Background(), msg); !errors.Is(err, tc.want) {
				t.Errorf("Enqueue: %v, want %v", err, tc.want)
			}
			if _, err := m.Compose(msg); !errors.Is(err, tc.want) {
				t.Errorf("Compose: %v, want %v", err, tc.want)
			}
		})
	}
	msg := ok
	msg.Body = strings.Repeat("x", 998) + "\r\n"
	if err := msg.Check(); err != nil {
		t.Errorf("a 998-byte line: %v", err)
	}
	m.Close()
	if n := len(mx.Messages()); n != 0 {
		t.Errorf("relay received %d messages", n)
	}
}

// TestMailerFailures covers relays that refuse, never answer or talk
// without end: each send fails within the timeout and nothing is
// delivered.
func TestMailerFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode lab.Mode
		want error
	}{
		{name: "refusing relay", mode: lab.ModeBadGreeting},
		{name: "tarpit relay", mode: lab.ModeTarpit, want: context.DeadlineExceeded},
		{name: "endless reply", mode: lab.ModeEndlessLine, want: ErrReplyTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mx := lab.NewMX(t, "127.0.0.5:0", tc.mode, nil)
			m := newMailer(t, Config{Relay: mx.Addr(), Timeout: 300 * time.Millisecond})
			err := m.Send(context.Background(), Message{To: "postmaster@example.test", Subject: "s", Body: "b"})
			if err == nil {
				t.Fatal("send succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if len(mx.Messages()) != 0 {
				t.Errorf("relay received %d messages", len(mx.Messages()))
			}
		})
	}
}

// TestMailerRejectsConfig refuses a sender that could add headers, a relay
// without a port and a sender that is not an address.
func TestMailerRejectsConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Relay: "127.0.0.1:25", From: "a@b.test\r\nBcc: c@d.test"}, ErrHeaderInjection},
		{Config{Relay: "127.0.0.1", From: "a@b.test"}, ErrConfig},
		{Config{Relay: "127.0.0.1:25", From: "not an address"}, ErrConfig},
		{Config{Relay: "127.0.0.1:25", From: "a@b.test", CAFile: "testdata/absent.pem"}, ErrConfig},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.cfg, err, tc.want)
		}
	}
}

// TestMailerQueueFull refuses messages beyond the queue instead of
// waiting: the relay never answers (and the send's timeout is far away),
// so the sender is stuck on the first message and the queue stays full
// until the relay goes away. After Close, Enqueue is refused.
func TestMailerQueueFull(t *testing.T) {
	mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeTarpit, nil)
	m := newMailer(t, Config{Relay: mx.Addr(), Timeout: time.Minute, Queue: 1})
	var r results
	full := 0
	for range 5 {
		err := m.Enqueue(context.Background(), Message{To: "postmaster@example.test", Subject: "s", Body: "b", Done: r.done})
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	mx.Close() // the stuck send fails now, and so does the queued one
	m.Close()
	if full < 3 || len(r.errs)+full != 5 {
		t.Errorf("%d refused as full and %d attempted, want 5 with at least 3 refused", full, len(r.errs))
	}
	for _, err := range r.errs {
		if err == nil {
			t.Error("a send to a closed relay succeeded")
		}
	}
	if err := m.Enqueue(context.Background(), Message{To: "postmaster@example.test", Subject: "s"}); !errors.Is(err, ErrClosed) {
		t.Errorf("enqueue after close: %v", err)
	}
}
