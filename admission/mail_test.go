package admission

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

var failNotice = Notice{
	Domain:    "broken.test",
	Code:      CodeCheckFailed,
	Message:   "broken.test failed a check (cert.expired); it is demoted if the failure persists for 24h0m0s",
	At:        time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC),
	Codes:     []string{"cert.expired"},
	Summaries: []string{"the certificate of mx.broken.test expired on 2026-11-01"},
}

// newMailer returns a notice mailer through a notify.Mailer to relay (cfg's
// Relay), counting in metrics.
func newMailer(t *testing.T, cfg notify.Config, metrics *Metrics) (*MailNotifier, *notify.Mailer) {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "STARTTLS preload <noreply@preload.test>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Log == nil {
		cfg.Log = log
	}
	m, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &MailNotifier{Mailer: m, Metrics: metrics, Log: log}, m
}

// TestMailNotifierDelivers sends a notice to a lab relay, in the clear and
// over verified STARTTLS, and reads back the message it received.
func TestMailNotifierDelivers(t *testing.T) {
	pki := lab.NewPKI(t)
	cert := pki.Leaf("127.0.0.5")
	for _, tc := range []struct {
		name     string
		starttls bool
	}{{"plain", false}, {"starttls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeGood, &cert)
			cfg := notify.Config{Relay: mx.Addr(), StartTLS: tc.starttls}
			if tc.starttls {
				cfg.CAFile = pki.WriteRootPEM(t)
			}
			metrics := NewMetrics(nil)
			n, m := newMailer(t, cfg, metrics)
			if err := n.Notify(context.Background(), "postmaster@broken.test", failNotice); err != nil {
				t.Fatal(err)
			}
			m.Close() // sends what is queued
			if got := noticeCount(t, metrics, NoticeSent); got != 1 {
				t.Fatalf("sent = %v, want 1", got)
			}
			msgs := mx.Messages()
			if len(msgs) != 1 {
				t.Fatalf("relay received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if got.TLS != tc.starttls {
				t.Errorf("TLS = %v, want %v", got.TLS, tc.starttls)
			}
			if got.From != "noreply@preload.test" || len(got.To) != 1 || got.To[0] != "postmaster@broken.test" {
				t.Errorf("envelope %q -> %q", got.From, got.To)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
			if err != nil {
				t.Fatal(err)
			}
			if to := msg.Header.Get("To"); to != "postmaster@broken.test" {
				t.Errorf("To = %q", to)
			}
			if s := msg.Header.Get("Subject"); !strings.Contains(s, "broken.test") || !strings.Contains(s, "failed a check") {
				t.Errorf("Subject = %q", s)
			}
			for _, h := range []string{"Date", "Message-ID", "From"} {
				if msg.Header.Get(h) == "" {
					t.Errorf("no %s header", h)
				}
			}
			if _, err := msg.Header.Date(); err != nil {
				t.Errorf("Date: %v", err)
			}
			body, _ := io.ReadAll(msg.Body)
			for _, want := range []string{"cert.expired: the certificate of mx.broken.test expired", "2026-11-23T08:00:00Z", "demoted to testing", "How to fix it"} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
		})
	}
}

// TestMailNotifierFailures covers relays that refuse and notices that try
// to add headers: the notice is counted as failed, Notify returns no error
// (a round never fails for a notice), and nothing is delivered.
func TestMailNotifierFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    lab.Mode
		contact string
		domain  string
	}{
		{name: "refusing relay", mode: lab.ModeBadGreeting, contact: "postmaster@broken.test", domain: "broken.test"},
		{name: "contact with CRLF", mode: lab.ModeGood, contact: "postmaster@broken.test\r\nBcc: victim@else.test", domain: "broken.test"},
		{name: "domain with LF", mode: lab.ModeGood, contact: "postmaster@broken.test", domain: "broken.test\nBcc: victim@else.test"},
		{name: "contact not an address", mode: lab.ModeGood, contact: "Someone <postmaster@broken.test>", domain: "broken.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mx := lab.NewMX(t, "127.0.0.5:0", tc.mode, nil)
			metrics := NewMetrics(nil)
			n, m := newMailer(t, notify.Config{Relay: mx.Addr(), Timeout: 5 * time.Second}, metrics)
			notice := failNotice
			notice.Domain = tc.domain
			if err := n.Notify(context.Background(), tc.contact, notice); err != nil {
				t.Fatalf("notify: %v", err)
			}
			m.Close()
			if got := noticeCount(t, metrics, NoticeFailed); got != 1 {
				t.Errorf("failed = %v, want 1", got)
			}
			if len(mx.Messages()) != 0 {
				t.Errorf("relay received %d messages", len(mx.Messages()))
			}
		})
	}
}

// TestMailNotifierNeverFailsTheRound runs a round in which a listed domain
// fails while the relay refuses mail: the round succeeds, the failure is
// recorded, and the notice is counted as failed; a domain without contact
// is skipped.
func TestMailNotifierNeverFailsTheRound(t *testing.T) {
	ctx := context.Background()
	mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeBadGreeting, nil)
	metrics := NewMetrics(nil)
	n, m := newMailer(t, notify.Config{Relay: mx.Addr(), Timeout: 5 * time.Second}, metrics)

	st := memstore.New()
	clock := testclock.New(t0)
	fc := &fakeChecker{answer: func(d string) *validate.Result { return failResult(d, "mx."+d) }}
	s := newTestScheduler(t, st, fc, clock, Notifiers{LogNotifier{Log: n.Log}, n})
	addDomain(t, st, "listed.test", Enforce, t0, "mx.listed.test")
	addDomain(t, st, "quiet.test", Testing, t0, "mx.quiet.test")
	d, err := st.GetDomain(ctx, "quiet.test")
	if err != nil {
		t.Fatal(err)
	}
	d.Contact = ""
	if err := st.UpdateDomain(ctx, d); err != nil {
		t.Fatal(err)
	}

	stats, err := s.RunRound(ctx)
	if err != nil {
		t.Fatalf("round: %v", err)
	}
	if stats.Failed != 2 || stats.Recorded != 2 {
		t.Errorf("stats = %+v, want 2 failed and recorded", stats)
	}
	m.Close()
	for result, want := range map[string]float64{NoticeFailed: 1, NoticeSkipped: 1, NoticeSent: 0} {
		if got := noticeCount(t, metrics, result); got != want {
			t.Errorf("notices %s = %v, want %v", result, got, want)
		}
	}
}

// TestMailNotifierQueueFull drops notices beyond the queue instead of
// waiting: the relay never answers (and the send's timeout is far away), so
// the sender is stuck on the first notice and the queue stays full until
// the relay goes away.
func TestMailNotifierQueueFull(t *testing.T) {
	mx := lab.NewMX(t, "127.0.0.5:0", lab.ModeTarpit, nil)
	metrics := NewMetrics(nil)
	n, m := newMailer(t, notify.Config{Relay: mx.Addr(), Timeout: time.Minute, Queue: 1}, metrics)
	for range 5 {
		if err := n.Notify(context.Background(), "postmaster@broken.test", failNotice); err != nil {
			t.Fatal(err)
		}
	}
	mx.Close() // the stuck send fails now, and so does the queued one
	m.Close()
	sent := noticeCount(t, metrics, NoticeFailed)
	dropped := noticeCount(t, metrics, NoticeDropped)
	if sent+dropped != 5 || dropped < 3 {
		t.Errorf("failed %v + dropped %v, want 5 with at least 3 dropped", sent, dropped)
	}
	if err := n.Notify(context.Background(), "postmaster@broken.test", failNotice); !errors.Is(err, notify.ErrClosed) {
		t.Errorf("notify after close: %v", err)
	}
}

// noticeCount reads the notices_total counter for result.
func noticeCount(t *testing.T, m *Metrics, result string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.notices)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			for _, l := range x.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return x.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestNoticeText: each notice code says in its subject and body what
// happened and what comes next.
func TestNoticeText(t *testing.T) {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		code, subject, next string
	}{
		{CodeCheckFailed, "example.test failed a check", "If the failure\n  persists for the grace period"},
		{CodeMXMismatch, "example.test demoted, an MX is outside its patterns", "must declare\n  MX patterns"},
		{CodeFailure, "example.test demoted after failing checks", "listed as testing from the next list on"},
		{CodeStale, "example.test removed from the list", "not in the next list"},
	} {
		n := Notice{Domain: "example.test", Code: tt.code, Message: "m", Codes: []string{"cert.expired"}, Summaries: []string{"expired"}}
		if s := subjectOf(n); !strings.Contains(s, tt.subject) {
			t.Errorf("%s: subject %q lacks %q", tt.code, s, tt.subject)
		}
		body := bodyOf(n, at)
		if !strings.Contains(body, tt.next) || !strings.Contains(body, "cert.expired: expired") {
			t.Errorf("%s: body lacks %q or the findings:\n%s", tt.code, tt.next, body)
		}
	}
}
